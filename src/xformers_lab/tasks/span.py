"""Span corruption: the T5 objective (arXiv 1910.10683 sec. 3.1.4) for encoder-decoders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor

from xformers_lab.data.collators import IGNORE_INDEX
from xformers_lab.data.span_corruption import (
    SpanCorruptionCollator,
    SpanLengths,
    compute_span_lengths,
)
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.errors import UserError
from xformers_lab.estimates import RowShape
from xformers_lab.tasks.objective import Batch, LossSums, Objective, Windows

if TYPE_CHECKING:
    from xformers_lab.data.config import DataConfig, TokenizerConfig

FP16_WARNING = (
    "T5 is numerically unstable in fp16 (its activations overflow the fp16 range); "
    "use trainer.precision=bf16-mixed"
)


@dataclass(frozen=True, kw_only=True)
class SpanOptions:
    """`task=span` keys: how much of each window is noise, and in how long spans."""

    noise_density: float = 0.15
    """Share of each window's tokens dropped from the input and predicted by the decoder."""
    mean_noise_span_length: float = 3.0
    """Mean length of a noise span: spans per window = noise tokens / this (one sentinel each)."""
    seed: int = 0
    """Seeds the noise masks, together with each batch's contents (the run's `seed` by default)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.noise_density < 1.0:
            raise ValueError(f"noise_density must be in (0, 1), got {self.noise_density}")
        if self.mean_noise_span_length < 1.0:
            raise ValueError(
                f"mean_noise_span_length must be >= 1, got {self.mean_noise_span_length}"
            )


def span_lengths(seq_len: int, options: SpanOptions, n_sentinels: int | None = None) -> SpanLengths:
    """The fixed geometry for encoder inputs of `seq_len` tokens; a `UserError` if impossible."""
    try:
        return compute_span_lengths(
            seq_len, options.noise_density, options.mean_noise_span_length, n_sentinels
        )
    except ValueError as err:
        raise UserError(f"task=span: {err}") from None


class SpanCorruption(Objective):
    """Cross-entropy of the decoder over the targets, teacher-forced on the targets shifted
    right. Windows have the raw length whose corruption is exactly seq_len tokens (T5's
    arithmetic), so every input is seq_len tokens and every target the same length. Validation
    reports loss and perplexity per target token (sentinels and EOS included, as T5 counts them)
    and bits per byte over the text of the noise spans alone."""

    name = "span"
    archs = frozenset({"encoder_decoder"})
    Options = SpanOptions

    @classmethod
    def check(cls, data: DataConfig, tokenizer: TokenizerConfig, options: SpanOptions) -> None:
        """Windows for `data.seq_len` exist and need at most `tokenizer.n_sentinels`."""
        span_lengths(data.seq_len, options, tokenizer.n_sentinels)

    @classmethod
    def windows(cls, seq_len: int, options: SpanOptions) -> Windows:
        tokens = span_lengths(seq_len, options).tokens
        return Windows(block_len=tokens, stride=tokens)

    @classmethod
    def row_shape(cls, seq_len: int, options: SpanOptions) -> RowShape:
        return RowShape(seq_len=seq_len, target_len=span_lengths(seq_len, options).targets)

    @classmethod
    def collator(
        cls, tokenizer: Tokenizer, seq_len: int, options: SpanOptions
    ) -> SpanCorruptionCollator:
        span_lengths(seq_len, options, tokenizer.n_sentinels)  # the one-line error, if any
        return SpanCorruptionCollator(
            tokenizer,
            seq_len,
            noise_density=options.noise_density,
            mean_noise_span_length=options.mean_noise_span_length,
            seed=options.seed,
        )

    def fit_warnings(self, precision: str) -> list[str]:
        return [FP16_WARNING] if precision.startswith("16") else []

    def batch_tokens(self, batch: Batch) -> int:
        """Encoder input plus decoder target tokens."""
        return batch["input_ids"].numel() + batch["labels"].numel()

    def logits(self, batch: Batch) -> Tensor:
        """(B, target_len, V) decoder logits for the batch's shifted targets."""
        return self.model(batch["input_ids"], **_model_inputs(batch))

    def summed_loss(self, batch: Batch) -> LossSums:
        """Through the fused head and loss: the (B, T, V) logits are never materialised."""
        labels = batch["labels"]
        nats = self.model.summed_nats(batch["input_ids"], labels, **_model_inputs(batch))
        return LossSums(nats, (labels != IGNORE_INDEX).sum(), labels.numel())

    def validation_sums(self, batch: Batch) -> dict[str, Tensor]:
        targets = batch["labels"].flatten()
        token_losses = F.cross_entropy(self.logits(batch).flatten(0, 1), targets, reduction="none")
        return {
            "nats": token_losses.sum(),
            "tokens": targets.new_tensor(targets.numel()),
            **self.byte_sums(token_losses, targets),  # sentinels and EOS stand for no bytes
        }


def _model_inputs(batch: Batch) -> dict[str, Tensor | None]:
    """Everything but input_ids and labels that the encoder-decoder reads."""
    keys = (
        "attention_mask",
        "decoder_input_ids",
        "decoder_attention_mask",
        "document_ids",
        "decoder_document_ids",
    )
    return {key: batch.get(key) for key in keys}
