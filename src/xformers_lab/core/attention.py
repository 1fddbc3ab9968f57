"""Multi-head attention (MHA/GQA/MQA) through `scaled_dot_product_attention`, self and cross.

Masks and position terms are built once per stack (`StackContext`, see `attention_mask`) and
shared by its layers; an attention layer only projects, rotates, attends and projects back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xformers_lab.core.kv_cache import LayerCache
from xformers_lab.core.positions import apply_rotary

if TYPE_CHECKING:
    from xformers_lab.core.config import TransformerConfig


@dataclass
class StackContext:
    """What every block of one stack shares during one forward."""

    mask: Tensor | None = None
    """Bool (True = may attend) or additive float, broadcastable to (B, H, T, S); None = full."""
    is_causal: bool = False
    """Use SDPA's built-in causal mask (only when `mask` is None: the fastest kernels)."""
    rotary: tuple[Tensor, Tensor] | None = None
    """RoPE (cos, sin) for the queries' and keys' positions."""
    memory: Tensor | None = None
    """Encoder output (B, S, D) that cross-attention reads."""
    memory_mask: Tensor | None = None
    """Bool (B, 1, 1, S): which encoder positions are real tokens."""


class SelfAttention(nn.Module):
    """Attention of a sequence over itself with one fused QKV projection."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.d_head = cfg.n_heads, cfg.n_kv_heads, cfg.d_head
        q_dim, kv_dim = cfg.n_heads * cfg.d_head, cfg.n_kv_heads * cfg.d_head
        self.split = (q_dim, kv_dim, kv_dim)
        self.qkv = nn.Linear(cfg.d_model, q_dim + 2 * kv_dim, bias=cfg.bias)
        self.out = nn.Linear(q_dim, cfg.d_model, bias=cfg.bias)
        self.out.is_residual_projection = True
        self.dropout, self.scale = cfg.dropout, cfg.attn_scale

    def forward(
        self, x: Tensor, ctx: StackContext, cache: LayerCache | None = None
    ) -> Tensor:  # x: (B, T, D)
        q, k, v = self.qkv(x).split(self.split, dim=-1)
        q = _heads(q, self.n_heads, self.d_head)  # (B, H, T, d_head)
        k = _heads(k, self.n_kv_heads, self.d_head)  # (B, H_kv, T, d_head)
        v = _heads(v, self.n_kv_heads, self.d_head)
        if ctx.rotary is not None:
            q, k = apply_rotary(q, *ctx.rotary), apply_rotary(k, *ctx.rotary)
        if cache is not None:  # keys are cached rotated, at their own positions
            k, v = cache.append(k, v)  # (B, H_kv, S, d_head)
        dropout = self.dropout if self.training else 0.0
        y = _attend(q, k, v, ctx.mask, ctx.is_causal, dropout, self.scale)
        return self.out(_merge_heads(y))


class CrossAttention(nn.Module):
    """Attention of the decoder over the encoder output (`ctx.memory`), keys/values fused."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.d_head = cfg.n_heads, cfg.n_kv_heads, cfg.d_head
        self.q = nn.Linear(cfg.d_model, cfg.n_heads * cfg.d_head, bias=cfg.bias)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.n_kv_heads * cfg.d_head, bias=cfg.bias)
        self.out = nn.Linear(cfg.n_heads * cfg.d_head, cfg.d_model, bias=cfg.bias)
        self.out.is_residual_projection = True
        self.dropout, self.scale = cfg.dropout, cfg.attn_scale

    def forward(
        self, x: Tensor, ctx: StackContext, cache: LayerCache | None = None
    ) -> Tensor:  # x: (B, T, D)
        q = _heads(self.q(x), self.n_heads, self.d_head)
        if cache is not None and cache.cross_k is not None and cache.cross_v is not None:
            k, v = cache.cross_k, cache.cross_v  # the encoder output does not change
        else:
            k, v = self._memory_kv(ctx)
            if cache is not None:
                cache.cross_k, cache.cross_v = k, v
        dropout = self.dropout if self.training else 0.0
        y = _attend(q, k, v, ctx.memory_mask, False, dropout, self.scale)
        return self.out(_merge_heads(y))

    def _memory_kv(self, ctx: StackContext) -> tuple[Tensor, Tensor]:
        if ctx.memory is None:
            raise ValueError("cross-attention needs the encoder output (memory)")
        k, v = self.kv(ctx.memory).chunk(2, dim=-1)
        return _heads(k, self.n_kv_heads, self.d_head), _heads(v, self.n_kv_heads, self.d_head)


def attention_mask(
    *,
    causal: bool,
    q_len: int,
    k_len: int,
    key_padding: Tensor | None,
    bias: Tensor | None,
    device: torch.device,
    document_ids: Tensor | None = None,
) -> tuple[Tensor | None, bool]:
    """Combine causality, key padding, documents and a score bias into one SDPA mask.

    Returns (mask, is_causal). With nothing but causality the mask is None and SDPA's causal
    flag selects the flash kernels. A query whose keys are all padding would softmax over
    nothing (NaN, which then leaks through values), so every query may always see its own
    position; only padded queries are affected and their outputs are ignored.

    `document_ids` (B, S), the document of each key of a packed row (queries are the last T),
    makes the mask block-diagonal: a token sees only its own document.
    """
    if key_padding is None and bias is None and document_ids is None:
        if q_len == k_len:
            return None, causal
        if q_len == 1 or not causal:  # one new query after cached keys sees every key
            return None, False
        # SDPA's is_causal aligns top-left, wrong when queries are the last T of S keys
        allowed = torch.ones(q_len, k_len, dtype=torch.bool, device=device)
        return allowed.tril(diagonal=k_len - q_len), False
    allowed = torch.ones(1, 1, q_len, k_len, dtype=torch.bool, device=device)
    if causal:
        allowed = allowed.tril(diagonal=k_len - q_len)
    if document_ids is not None:
        queries = document_ids[:, None, k_len - q_len :, None]  # (B, 1, T, 1)
        allowed = allowed & (queries == document_ids[:, None, None, :])
    if key_padding is not None:  # (B, S): True/1 = real token
        allowed = allowed & key_padding.bool()[:, None, None, :]
        allowed = allowed | _own_position(q_len, k_len, device)
    if bias is None:
        return allowed, False
    return bias.masked_fill(~allowed, float("-inf")), False


def _own_position(q_len: int, k_len: int, device: torch.device) -> Tensor:
    """(T, S) True where a query meets its own key; queries are the last T of S positions."""
    queries = torch.arange(k_len - q_len, k_len, device=device)
    return queries[:, None] == torch.arange(k_len, device=device)[None, :]


def padding_mask(key_padding: Tensor | None) -> Tensor | None:
    """(B, S) real-token flags as a (B, 1, 1, S) bool mask for cross-attention."""
    return None if key_padding is None else key_padding.bool()[:, None, None, :]


def cross_attention_mask(
    key_padding: Tensor | None, query_documents: Tensor | None, key_documents: Tensor | None
) -> Tensor | None:
    """Cross-attention mask: real encoder tokens (B, S) and, given both documents (B, T) and
    (B, S), only those of the query's document. A query with no such key sees every key (its
    output is finite and should not be used) rather than softmaxing over nothing."""
    mask = padding_mask(key_padding)
    if query_documents is None or key_documents is None:
        return mask
    same = query_documents[:, None, :, None] == key_documents[:, None, None, :]  # (B, 1, T, S)
    allowed = same if mask is None else same & mask
    return allowed | ~allowed.any(dim=-1, keepdim=True)


def _attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None,
    is_causal: bool,
    dropout: float,
    scale: float | None,
) -> Tensor:
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.to(q.dtype)
    return F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=mask,
        dropout_p=dropout,
        is_causal=is_causal,
        scale=scale,  # None: 1/sqrt(d_head)
        enable_gqa=k.shape[1] != q.shape[1],
    )


def _heads(x: Tensor, n_heads: int, d_head: int) -> Tensor:
    """(B, T, n_heads * d_head) -> (B, n_heads, T, d_head)."""
    return x.unflatten(-1, (n_heads, d_head)).transpose(1, 2)


def _merge_heads(y: Tensor) -> Tensor:
    """(B, H, T, d_head) -> (B, T, H * d_head)."""
    return y.transpose(1, 2).flatten(2)
