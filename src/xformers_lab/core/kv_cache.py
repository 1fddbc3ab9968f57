"""KV cache for incremental decoding.

Self-attention keys/values of the tokens decoded so far are appended per step, so a new token
costs one position of compute instead of the whole prefix; an encoder-decoder's cross-attention
keys/values depend only on the encoder output and are computed once. The positions of the
cached keys are kept too, so relative schemes (ALiBi, T5 buckets) bias new queries correctly.
"""

from __future__ import annotations

import torch
from torch import Tensor


class LayerCache:
    """Keys and values of one block: (B, H_kv, S, d_head) each."""

    def __init__(self) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        self.cross_k: Tensor | None = None
        self.cross_v: Tensor | None = None

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add this step's keys/values; returns all of them so far."""
        if self.k is None or self.v is None:
            self.k, self.v = k, v
        else:
            self.k, self.v = torch.cat((self.k, k), dim=2), torch.cat((self.v, v), dim=2)
        return self.k, self.v

    def reorder(self, index: Tensor) -> None:
        """Keep rows `index` of the batch (beam search re-ranks its hypotheses each step)."""
        for name in ("k", "v", "cross_k", "cross_v"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.index_select(0, index))


class KVCache:
    """The cache of one stack: a `LayerCache` per block and the positions of cached keys."""

    def __init__(self, n_layers: int) -> None:
        self.layers = [LayerCache() for _ in range(n_layers)]
        self.positions: Tensor | None = None  # (B|1, S)

    @property
    def length(self) -> int:
        """Tokens cached so far."""
        return 0 if self.positions is None else self.positions.shape[-1]

    def key_positions(self, positions: Tensor) -> Tensor:
        """Positions of every key once `positions` (B|1, T) of the new tokens are added."""
        if self.positions is None:
            return positions
        cached = (
            self.positions.expand(positions.shape[0], -1)
            if positions.shape[0] > 1
            else (self.positions)
        )
        if cached.shape[0] > positions.shape[0]:
            positions = positions.expand(cached.shape[0], -1)
        return torch.cat((cached, positions), dim=-1)

    def reorder(self, index: Tensor) -> None:
        """Keep rows `index` of the batch in every layer."""
        for layer in self.layers:
            layer.reorder(index)
        if self.positions is not None and self.positions.shape[0] > 1:
            self.positions = self.positions.index_select(0, index)
