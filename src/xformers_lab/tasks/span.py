"""Span corruption: the T5 objective (arXiv 1910.10683 sec. 3.1.4) for encoder-decoders."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from xformers_lab.data.config import TokenizerConfig
from xformers_lab.data.span_corruption import (
    SpanCorruptionCollator,
    SpanLengths,
    compute_span_lengths,
)
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.errors import UserError
from xformers_lab.tasks.base import LanguageModelTask

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


def check_span_settings(seq_len: int, tokenizer: TokenizerConfig, options: SpanOptions) -> None:
    """Config-time check: windows for `seq_len` exist and need at most as many sentinels as
    `tokenizer.n_sentinels`."""
    span_lengths(seq_len, options, tokenizer.n_sentinels)


def span_collator(
    tokenizer: Tokenizer, seq_len: int, options: SpanOptions
) -> SpanCorruptionCollator:
    """Windows of `span_lengths(seq_len).tokens` -> inputs of seq_len, fixed-length targets."""
    span_lengths(seq_len, options, tokenizer.n_sentinels)  # the one-line error, if any
    return SpanCorruptionCollator(
        tokenizer,
        seq_len,
        noise_density=options.noise_density,
        mean_noise_span_length=options.mean_noise_span_length,
        seed=options.seed,
    )


class SpanCorruptionTask(LanguageModelTask):
    """Cross-entropy of the decoder over the targets, teacher-forced on the targets shifted
    right. Validation reports loss and perplexity per target token (sentinels and EOS included,
    as T5 counts them) and bits per byte over the text of the noise spans alone."""

    name = "span"

    def on_fit_start(self) -> None:
        if str(self.trainer.precision).startswith("16"):
            rank_zero_warn(FP16_WARNING)

    def batch_tokens(self, batch: dict[str, Tensor]) -> int:
        """Encoder input plus decoder target tokens."""
        return batch["input_ids"].numel() + batch["labels"].numel()

    def logits(self, batch: dict[str, Tensor]) -> Tensor:
        """(B, target_len, V) decoder logits for the batch's shifted targets."""
        return self.model(batch["input_ids"], **self._model_inputs(batch))

    def train_nats(self, batch: dict[str, Tensor]) -> Tensor:
        """Through the fused head and loss: the (B, T, V) logits are never materialised."""
        return self.model.summed_nats(
            batch["input_ids"], batch["labels"], **self._model_inputs(batch)
        )

    @staticmethod
    def _model_inputs(batch: dict[str, Tensor]) -> dict[str, Tensor | None]:
        """Everything but input_ids and labels that the encoder-decoder reads."""
        keys = (
            "attention_mask",
            "decoder_input_ids",
            "decoder_attention_mask",
            "document_ids",
            "decoder_document_ids",
        )
        return {key: batch.get(key) for key in keys}

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        targets = batch["labels"].flatten()
        logits = self.logits(batch)
        token_losses = F.cross_entropy(logits.flatten(0, 1), targets, reduction="none")
        self.accumulate_val(
            nats=token_losses.sum(),
            tokens=targets.new_tensor(targets.numel()),
            **self.byte_sums(token_losses, targets),  # sentinels and EOS stand for no bytes
        )
