"""Model shells around the stack: token embedding, stack(s), LM head; one per architecture."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xformers_lab.core.block import Stack
from xformers_lab.core.config import TransformerConfig


class LMHead(nn.Module):
    """Hidden states -> logits over the padded vocabulary, tied to the embedding or not.

    Padded vocabulary rows exist only for fast matmuls; their logits are -inf so they are never
    predicted, sampled, or given probability mass.
    """

    def __init__(self, cfg: TransformerConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        self.vocab_size = cfg.vocab_size
        self.tied = cfg.tie_embeddings
        if self.tied:
            self.weight = embedding.weight
        else:
            self.weight = nn.Parameter(torch.empty(cfg.padded_vocab_size, cfg.d_model))

    def forward(self, h: Tensor) -> Tensor:  # (..., D) -> (..., V_padded)
        logits = F.linear(h, self.weight)
        if logits.shape[-1] > self.vocab_size:
            logits[..., self.vocab_size :] = float("-inf")
        return logits


class DecoderLM(nn.Module):
    """Decoder-only causal LM (GPT, Llama): embed -> causal stack -> LM head."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embed = nn.Embedding(cfg.padded_vocab_size, cfg.d_model)
        self.decoder = Stack(cfg, cfg.n_layers, causal=True, cross=False)
        self.head = LMHead(cfg, self.embed)
        init_weights(self, cfg)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        """input_ids: (B, T) -> logits (B, T, V_padded)."""
        return self.head(self.hidden_states(input_ids, attention_mask, position_ids))

    def hidden_states(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
    ) -> Tensor:
        """Final-norm hidden states (B, T, D), before the LM head."""
        _check_length(input_ids, self.config)
        return self.decoder(
            self.embed(input_ids), attention_mask=attention_mask, position_ids=position_ids
        )


MODELS: dict[str, type[nn.Module]] = {
    "decoder": DecoderLM,
}


def build_model(cfg: TransformerConfig) -> nn.Module:
    """The model for `cfg.arch`, freshly initialised."""
    if cfg.arch not in MODELS:
        raise ValueError(f"arch {cfg.arch!r} has no model yet; available: {', '.join(MODELS)}")
    return MODELS[cfg.arch](cfg)


def count_parameters(model: nn.Module) -> int:
    """Unique trainable parameters (a tied head counts once)."""
    return sum(p.numel() for p in model.parameters())


def init_weights(model: nn.Module, cfg: TransformerConfig) -> None:
    """GPT-2 init: N(0, init_std) for matrices and embeddings, zero biases, unit norms, and
    residual projections scaled by 1/sqrt(2 * n_layers) so the residual stream does not grow
    with depth."""
    residual_std = cfg.init_std / math.sqrt(2 * cfg.n_layers)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            std = residual_std if getattr(module, "is_residual_projection", False) else cfg.init_std
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) or (isinstance(module, LMHead) and not module.tied):
            nn.init.normal_(module.weight, mean=0.0, std=cfg.init_std)


def _check_length(ids: Tensor, cfg: TransformerConfig) -> None:
    if ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, seq_len), got shape {tuple(ids.shape)}")
    if ids.shape[1] > cfg.max_seq_len:
        raise ValueError(
            f"sequence of {ids.shape[1]} tokens exceeds model.max_seq_len={cfg.max_seq_len}"
        )
