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
    """Keys and values of one block, (B, H_kv, S, d_head) each.

    Stored in buffers that double when full, so a step writes its keys in place instead of
    copying the whole history (`torch.cat` per step is quadratic in the generated length).
    """

    def __init__(self) -> None:
        self._k: Tensor | None = None
        self._v: Tensor | None = None
        self.length = 0
        self.cross_k: Tensor | None = None
        self.cross_v: Tensor | None = None

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add this step's keys/values; returns all of them so far."""
        new = k.shape[2]
        if self._k is None or self._v is None or self.length + new > self._k.shape[2]:
            self._k, self._v = self._grown(k, v, self.length + new)
        self._k[:, :, self.length : self.length + new] = k
        self._v[:, :, self.length : self.length + new] = v
        self.length += new
        return self._k[:, :, : self.length], self._v[:, :, : self.length]

    def reorder(self, index: Tensor) -> None:
        """Keep rows `index` of the batch (beam search re-ranks its hypotheses each step)."""
        for name in ("_k", "_v", "cross_k", "cross_v"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.index_select(0, index))

    def _grown(self, k: Tensor, v: Tensor, needed: int) -> tuple[Tensor, Tensor]:
        capacity = max(needed, 2 * (self._k.shape[2] if self._k is not None else 0), 64)
        shape = (k.shape[0], k.shape[1], capacity, k.shape[3])
        grown_k, grown_v = k.new_empty(shape), v.new_empty(shape)
        if self._k is not None and self._v is not None and self.length:
            grown_k[:, :, : self.length] = self._k[:, :, : self.length]
            grown_v[:, :, : self.length] = self._v[:, :, : self.length]
        return grown_k, grown_v


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
