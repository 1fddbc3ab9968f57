"""Masked language modelling: predict the tokens the collator selected (BERT, RoBERTa)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from xformers_lab.data.collators import IGNORE_INDEX, MaskedLMCollator
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.estimates import RowShape
from xformers_lab.tasks.objective import Batch, LossSums, Objective, Windows


@dataclass(frozen=True, kw_only=True)
class MLMOptions:
    """`task=mlm` keys: how many tokens are selected, and what becomes of them."""

    mask_prob: float = 0.15
    """Share of the regular (non-special, non-padding) tokens selected for prediction."""
    mask_token: float = 0.8
    """Share of the selected tokens replaced by `<mask>`."""
    random_token: float = 0.1
    """Share of the selected tokens replaced by a random regular token."""
    keep_token: float = 0.1
    """Share of the selected tokens left as they are; the three shares sum to 1."""
    seed: int = 0
    """Seeds the masking, together with each batch's contents (the run's `seed` by default)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in (0, 1], got {self.mask_prob}")
        shares = {"mask_token": self.mask_token, "random_token": self.random_token}
        shares["keep_token"] = self.keep_token
        for name, share in shares.items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {share}")
        if abs(sum(shares.values()) - 1.0) > 1e-6:
            raise ValueError(
                "mask_token + random_token + keep_token must sum to 1, got "
                f"{self.mask_token} + {self.random_token} + {self.keep_token}"
            )


class MaskedLM(Objective):
    """Cross-entropy at the selected positions only; the MLM head runs on those alone.

    Rows are windows of seq_len - 2 stream tokens, framed as `<cls> window <sep>` by the
    collator. Validation reports the MLM loss and perplexity, `mlm_accuracy` (top-1 at the
    selected positions) and `majority_accuracy`: what always predicting the most frequent
    selected token of the validation set would score, the baseline the accuracy should beat.
    """

    name = "mlm"
    archs = frozenset({"encoder"})
    Options = MLMOptions

    @classmethod
    def windows(cls, seq_len: int, options: MLMOptions) -> Windows:
        return Windows(block_len=seq_len - 2, stride=seq_len - 2)

    @classmethod
    def row_shape(cls, seq_len: int, options: MLMOptions) -> RowShape:
        """The head runs on the collator's K = ceil(mask_prob * (seq_len - 2)) slots."""
        return RowShape(
            seq_len=seq_len, head_positions=math.ceil(options.mask_prob * (seq_len - 2))
        )

    @classmethod
    def collator(cls, tokenizer: Tokenizer, seq_len: int, options: MLMOptions) -> MaskedLMCollator:
        """Rows of `seq_len - 2` stream tokens -> framed, masked rows of `seq_len`."""
        return MaskedLMCollator(
            tokenizer,
            mask_prob=options.mask_prob,
            mask_token=options.mask_token,
            random_token=options.random_token,
            seed=options.seed,
        )

    def masked_logits(self, batch: Batch) -> Tensor:
        """Logits (B, K, V) at `batch["mask_positions"]` (B, K); `document_ids`
        (data.document_mask) keep attention inside each packed document."""
        return self.model.masked_logits(
            batch["input_ids"],
            batch["mask_positions"],
            attention_mask=batch.get("attention_mask"),
            document_ids=batch.get("document_ids"),
        )

    def summed_loss(self, batch: Batch) -> LossSums:
        labels = batch["labels"].flatten()
        logits = self.masked_logits(batch).flatten(0, 1)
        nats = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
        return LossSums(nats, (labels != IGNORE_INDEX).sum(), labels.numel())

    def validation_sums(self, batch: Batch) -> dict[str, Tensor]:
        labels = batch["labels"].flatten()
        logits = self.masked_logits(batch).flatten(0, 1)
        token_losses = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="none")
        used = labels != IGNORE_INDEX
        counts = torch.zeros(logits.shape[-1], device=labels.device, dtype=torch.float64)
        counts.index_add_(0, labels.clamp(min=0), used.double())  # selected tokens per id
        return {
            "nats": token_losses.sum(),
            "tokens": used.sum(),
            "correct": ((logits.argmax(-1) == labels) & used).sum(),
            "label_counts": counts,
        }

    def metrics(self, totals: dict[str, Tensor]) -> dict[str, Tensor]:
        metrics = super().metrics(totals)
        tokens = totals["tokens"].clamp(min=1)
        metrics["mlm_accuracy"] = (totals["correct"] / tokens).float()
        metrics["majority_accuracy"] = (totals["label_counts"].max() / tokens).float()
        return metrics
