"""Causal language modelling: predict every next token (GPT)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from xformers_lab.data.collators import IGNORE_INDEX, CausalLMCollator
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.tasks.objective import Batch, LossSums, Objective, Windows


class CausalLM(Objective):
    """Shifted next-token cross-entropy; validation adds perplexity and bits per byte.

    Rows are windows of seq_len + 1 tokens overlapping by one: inputs and shifted targets waste
    nothing.
    """

    name = "clm"
    archs = frozenset({"decoder"})
    generative = True

    @classmethod
    def windows(cls, seq_len: int, options: Any) -> Windows:
        return Windows(block_len=seq_len + 1, stride=seq_len)

    @classmethod
    def collator(cls, tokenizer: Tokenizer, seq_len: int, options: Any) -> CausalLMCollator:
        return CausalLMCollator()

    def summed_loss(self, batch: Batch) -> LossSums:
        """Through the fused head and loss: the (B, T, V) logits are never materialised."""
        labels = batch["labels"]
        nats = self.model.summed_nats(
            batch["input_ids"], labels, document_ids=batch.get("document_ids")
        )
        return LossSums(nats, (labels != IGNORE_INDEX).sum(), labels.numel())

    def validation_sums(self, batch: Batch) -> dict[str, Tensor]:
        targets = batch["labels"].flatten()
        logits = self.model(batch["input_ids"], document_ids=batch.get("document_ids"))
        token_losses = F.cross_entropy(logits.flatten(0, 1), targets, reduction="none")
        return {
            "nats": token_losses.sum(),
            "tokens": targets.new_tensor(targets.numel()),
            **self.byte_sums(token_losses, targets),
        }
