"""Weight initialisation and input checks shared by the model shells."""

from __future__ import annotations

import math

from torch import Tensor, nn

from xformers_lab.core.config import TransformerConfig
from xformers_lab.core.heads import LMHead


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


def check_input_ids(ids: Tensor, cfg: TransformerConfig) -> None:
    """Fail early, with shapes in the message, on input the model cannot take."""
    if ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, seq_len), got shape {tuple(ids.shape)}")
    if ids.shape[1] > cfg.max_seq_len:
        raise ValueError(
            f"sequence of {ids.shape[1]} tokens exceeds model.max_seq_len={cfg.max_seq_len}"
        )
