"""Causal language modelling: predict every next token (GPT)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from xformers_lab.tasks.base import LanguageModelTask


class CausalLMTask(LanguageModelTask):
    """Shifted next-token cross-entropy; validation adds perplexity and bits per byte."""

    name = "clm"

    def train_nats(self, batch: dict[str, Tensor]) -> Tensor:
        """Through the fused head and loss: the (B, T, V) logits are never materialised."""
        return self.model.summed_nats(
            batch["input_ids"], batch["labels"], document_ids=batch.get("document_ids")
        )

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        targets = batch["labels"].flatten()
        logits = self._logits(batch)
        token_losses = F.cross_entropy(logits.flatten(0, 1), targets, reduction="none")
        self.accumulate_val(
            nats=token_losses.sum(),
            tokens=targets.new_tensor(targets.numel()),
            **self.byte_sums(token_losses, targets),
        )

    def _logits(self, batch: dict[str, Tensor]) -> Tensor:
        """document_ids (data.document_mask) keep attention inside each packed document."""
        return self.model(batch["input_ids"], document_ids=batch.get("document_ids"))
