"""One residual block and the stack of blocks that every family is built from."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from xformers_lab.core.attention import (
    CrossAttention,
    SelfAttention,
    StackContext,
    attention_mask,
    cross_attention_mask,
)
from xformers_lab.core.kv_cache import KVCache, LayerCache
from xformers_lab.core.layers import FeedForward, make_norm
from xformers_lab.core.positions import make_positions

if TYPE_CHECKING:
    from xformers_lab.core.config import TransformerConfig


class Block(nn.Module):
    """Residual block:  x + attn(norm(x)) [+ cross(norm(x), memory)] + ffn(norm(x)).

    Post-norm (original Transformer/BERT) moves each norm after its residual sum instead.
    """

    def __init__(self, cfg: TransformerConfig, cross: bool) -> None:
        super().__init__()
        self.pre_norm = cfg.norm_position == "pre"
        self.attn_norm, self.attn = make_norm(cfg), SelfAttention(cfg)
        self.cross_norm = make_norm(cfg) if cross else None
        self.cross = CrossAttention(cfg) if cross else None
        self.ffn_norm, self.ffn = make_norm(cfg), FeedForward(cfg)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def forward(
        self, x: Tensor, ctx: StackContext, cache: LayerCache | None = None
    ) -> Tensor:  # x: (B, T, D)
        x = self._residual(x, self.attn_norm, lambda h: self.attn(h, ctx, cache))
        if self.cross is not None:
            x = self._residual(x, self.cross_norm, lambda h: self.cross(h, ctx, cache))
        return self._residual(x, self.ffn_norm, self.ffn)

    def _residual(self, x: Tensor, norm: nn.Module, sublayer: Callable[[Tensor], Tensor]) -> Tensor:
        if self.pre_norm:
            return x + self.drop(sublayer(norm(x)))
        return norm(x + self.drop(sublayer(x)))


class Stack(nn.Module):
    """Blocks sharing one position scheme and one attention mask.

    `causal` and `cross` decide the role: encoder (bidirectional), decoder (causal), or the
    decoder of an encoder-decoder (causal with cross-attention).
    """

    def __init__(self, cfg: TransformerConfig, n_layers: int, causal: bool, cross: bool) -> None:
        super().__init__()
        self.causal = causal
        self.positions = make_positions(cfg, causal)
        self.embedding_norm = make_norm(cfg) if cfg.embedding_norm else nn.Identity()
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.blocks = nn.ModuleList(Block(cfg, cross) for _ in range(n_layers))
        self.activation_checkpointing = cfg.activation_checkpointing
        self.final_norm = make_norm(cfg) if cfg.final_norm else nn.Identity()

    def forward(
        self,
        x: Tensor,
        *,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        memory: Tensor | None = None,
        memory_mask: Tensor | None = None,
        document_ids: Tensor | None = None,
        memory_document_ids: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """x: (B, T, D) token embeddings; attention_mask: (B, T), 1 for real tokens.

        With a `cache`, x holds only the new tokens: they attend to the cached ones too, their
        positions continue after them, and attention_mask covers all S keys (B, S).

        document_ids: (B, T) document of each token of a packed row: attention stays inside
        each document and positions restart at each document's first token (unless
        `position_ids` are given). memory_document_ids: (B, S) the same for the encoder output,
        so cross-attention reads only the query's document.
        """
        if position_ids is None and document_ids is not None:
            position_ids = document_positions(document_ids)
        past = cache.length if cache is not None else 0
        positions = (
            position_ids
            if position_ids is not None
            else torch.arange(past, past + x.shape[1], device=x.device)
        )
        if positions.dim() == 1:
            positions = positions.unsqueeze(0)  # (B|1, T)
        offset = self.positions.embedding(positions)
        if offset is not None:
            x = x + offset
        x = self.drop(self.embedding_norm(x))
        key_positions = cache.key_positions(positions) if cache is not None else positions
        ctx = self._context(
            x,
            positions,
            key_positions,
            attention_mask,
            memory,
            memory_mask,
            document_ids,
            memory_document_ids,
        )
        recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        for i, block in enumerate(self.blocks):
            if recompute:  # non-reentrant: composes with FSDP2, compile and dropout's RNG
                x = checkpoint(block, x, ctx, None, use_reentrant=False)
            else:
                x = block(x, ctx, cache.layers[i] if cache is not None else None)
        if cache is not None:
            cache.positions = key_positions
        return self.final_norm(x)

    def _context(
        self,
        x: Tensor,
        positions: Tensor,
        key_positions: Tensor,
        key_padding: Tensor | None,
        memory: Tensor | None,
        memory_mask: Tensor | None,
        document_ids: Tensor | None = None,
        memory_document_ids: Tensor | None = None,
    ) -> StackContext:
        mask, is_causal = attention_mask(
            causal=self.causal,
            q_len=x.shape[1],
            k_len=key_positions.shape[-1],
            key_padding=key_padding,
            bias=self.positions.score_bias(positions, key_positions),
            device=x.device,
            document_ids=document_ids,
        )
        return StackContext(
            mask=mask,
            is_causal=is_causal,
            rotary=self.positions.rotary(positions),
            memory=memory,
            memory_mask=cross_attention_mask(memory_mask, document_ids, memory_document_ids),
        )


def document_positions(document_ids: Tensor) -> Tensor:
    """(B, T) position of each token inside its document: its index minus the index where its
    run of equal document ids starts."""
    index = torch.arange(document_ids.shape[-1], device=document_ids.device)
    index = index.expand_as(document_ids)
    starts = torch.ones_like(document_ids, dtype=torch.bool)
    starts[..., 1:] = document_ids[..., 1:] != document_ids[..., :-1]
    return index - torch.where(starts, index, 0).cummax(dim=-1).values
