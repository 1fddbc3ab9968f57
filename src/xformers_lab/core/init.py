"""Weight initialisation and input checks shared by the model shells."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from xformers_lab.core.attention import CrossAttention, SelfAttention
from xformers_lab.core.config import TransformerConfig
from xformers_lab.core.heads import LMHead


def init_weights(model: nn.Module, cfg: TransformerConfig) -> None:
    """GPT-2 init: N(0, init_std) for matrices and embeddings, zero biases, unit norms, and
    residual projections scaled by 1/sqrt(2 * n_layers) so the residual stream does not grow
    with depth. With `attn_scale` set, the query weights start scaled by
    (1/sqrt(d_head)) / attn_scale, so the first scores are as with the default scale (T5's init
    absorbs 1/sqrt(d_head) into the queries the same way)."""
    residual_std = cfg.init_std / math.sqrt(2 * cfg.n_layers)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            std = residual_std if getattr(module, "is_residual_projection", False) else cfg.init_std
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) or (isinstance(module, LMHead) and not module.tied):
            nn.init.normal_(module.weight, mean=0.0, std=cfg.init_std)
    if cfg.attn_scale is not None:
        _scale_queries(model, cfg.d_head**-0.5 / cfg.attn_scale)


@torch.no_grad()
def _scale_queries(model: nn.Module, factor: float) -> None:
    for module in model.modules():
        if isinstance(module, SelfAttention):
            module.qkv.weight[: module.split[0]].mul_(factor)  # the query rows of the fused QKV
        elif isinstance(module, CrossAttention):
            module.q.weight.mul_(factor)


def check_input_ids(ids: Tensor, cfg: TransformerConfig) -> None:
    """Fail early, with shapes in the message, on input the model cannot take."""
    if ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, seq_len), got shape {tuple(ids.shape)}")
    if ids.shape[1] > cfg.max_seq_len:
        raise ValueError(
            f"sequence of {ids.shape[1]} tokens exceeds model.max_seq_len={cfg.max_seq_len}"
        )
