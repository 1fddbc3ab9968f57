"""Output heads shared by the model shells."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xformers_lab.core.config import TransformerConfig
from xformers_lab.core.layers import FFN_ACTIVATIONS, make_norm
from xformers_lab.core.linear_cross_entropy import linear_cross_entropy


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

    def summed_nats(self, h: Tensor, targets: Tensor) -> Tensor:
        """Summed cross-entropy of `targets` (-100: none) over the real vocabulary, in nats;
        the same value and gradients as `forward` then `F.cross_entropy`, without the logits."""
        if self.scale is not None:
            h = h * self.scale
        weight = self.weight[: self.vocab_size]
        return linear_cross_entropy(h.flatten(0, -2), weight, targets.flatten())


class MLMHead(nn.Module):
    """BERT's masked-LM head: dense -> activation -> norm -> decoder (tied or not) + output bias.

    It runs on whatever hidden states it is given: a task gathers the masked positions first,
    so at 15% masking most of the vocabulary projection is never computed.
    """

    def __init__(self, cfg: TransformerConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.act = FFN_ACTIVATIONS[cfg.ffn].fn
        self.norm = make_norm(cfg)
        self.decoder = LMHead(cfg, embedding)
        self.bias = nn.Parameter(torch.zeros(cfg.padded_vocab_size))

    def forward(self, h: Tensor) -> Tensor:  # (..., D) -> (..., V_padded); padded columns -inf
        return self.decoder(self.norm(self.act(self.dense(h)))) + self.bias
