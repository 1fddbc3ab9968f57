"""Fixed-length windows over a token stream, chosen per epoch by a seeded sampler.

    stream   a a a </s> b b b b </s> c c </s> d d d d d </s> ...
    epoch 0    [ w ][ w ][ w ][ w ] ...          grid from offset 0
    epoch 1      [ w ][ w ][ w ][ w ] ...        grid from a seeded offset in [0, stride)

Shifting the grid each epoch lets a multi-epoch run see new windows (as nanoGPT's random offsets
do) while every epoch stays a set of packed, non-repeating, fixed-length rows. Everything is a
function of (seed, epoch), so an epoch can be replayed exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler


class StreamWindows(Dataset[Tensor]):
    """Windows of `block_len` tokens of `stream`, addressed by their start position."""

    def __init__(self, stream: Tensor, block_len: int) -> None:
        self.stream = stream  # (N,) int32
        self.block_len = block_len
        self._span = torch.arange(block_len)

    def __len__(self) -> int:
        return max(0, len(self.stream) - self.block_len + 1)

    def __getitem__(self, start: int) -> Tensor:
        return self.stream[start : start + self.block_len]

    def __getitems__(self, starts: Sequence[int]) -> Tensor:
        """A whole batch in one gather: (B, block_len)."""
        return self.stream[torch.as_tensor(starts).unsqueeze(1) + self._span]


def window_count(stream_len: int, block_len: int, stride: int, offset: int = 0) -> int:
    """Windows of `block_len` every `stride` tokens that fit in the stream from `offset`."""
    return max(0, (stream_len - offset - block_len) // stride + 1)


class EpochWindowSampler(Sampler[int]):
    """Start positions of one epoch's windows, in a seeded order.

    Args:
        stream_len, block_len, stride: the grid (stride = block_len - 1 for causal LM rows).
        seed: decides offsets and order together with the epoch.
        shift: start each epoch's grid at a seeded offset in [0, stride) instead of 0.
        shuffle: visit the windows in a seeded random order instead of stream order.
    """

    def __init__(
        self,
        stream_len: int,
        block_len: int,
        stride: int,
        *,
        seed: int,
        shift: bool,
        shuffle: bool,
    ) -> None:
        if not 0 < stride <= block_len:
            raise ValueError(f"need 0 < stride <= block_len, got {stride=} and {block_len=}")
        self.stream_len, self.block_len, self.stride = stream_len, block_len, stride
        self.seed, self.shift, self.shuffle = seed, shift, shuffle
        self.epoch = 0
        largest_offset = stride - 1 if shift else 0  # every epoch has the same length
        self._len = window_count(stream_len, block_len, stride, largest_offset)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        offset = int(torch.randint(self.stride, (1,), generator=generator)) if self.shift else 0
        starts = offset + self.stride * torch.arange(self._len)
        if self.shuffle:
            starts = starts[torch.randperm(self._len, generator=generator)]
        return iter(starts.tolist())
