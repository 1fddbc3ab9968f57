"""Output heads shared by the model shells."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xformers_lab.core.config import TransformerConfig


class LMHead(nn.Module):
    """Hidden states -> logits over the padded vocabulary, tied to the embedding or not.

    Padded vocabulary rows exist only for fast matmuls; their logits are -inf so they are never
    predicted, sampled, or given probability mass. With `scale_tied_head` the hidden states are
    scaled by d_model ** -0.5 first (T5 v1.0 ties its head to embeddings of unit scale).
    """

    def __init__(self, cfg: TransformerConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        self.vocab_size = cfg.vocab_size
        self.tied = cfg.tie_embeddings
        self.scale = cfg.d_model**-0.5 if cfg.scale_tied_head else None
        if self.tied:
            self.weight = embedding.weight
        else:
            self.weight = nn.Parameter(torch.empty(cfg.padded_vocab_size, cfg.d_model))

    def forward(self, h: Tensor) -> Tensor:  # (..., D) -> (..., V_padded)
        if self.scale is not None:
            h = h * self.scale
        logits = F.linear(h, self.weight)
        if logits.shape[-1] > self.vocab_size:
            logits[..., self.vocab_size :] = float("-inf")
        return logits
