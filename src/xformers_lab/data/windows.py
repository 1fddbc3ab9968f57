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
from typing import NamedTuple

import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler


class WindowBatch(NamedTuple):
    """A batch of windows and where each one starts in its stream: the start tells apart rows
    with the same tokens (boilerplate, repeated text), so each gets its own random draws."""

    rows: Tensor
    """(B, block_len) token ids."""
    starts: Tensor
    """(B,) start positions."""


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

    def __getitems__(self, starts: Sequence[int]) -> WindowBatch:
        """A whole batch in one gather: (B, block_len) rows."""
        begin = torch.as_tensor(starts)
        return WindowBatch(self.stream[begin.unsqueeze(1) + self._span], begin)


def window_count(stream_len: int, block_len: int, stride: int, offset: int = 0) -> int:
    """Windows of `block_len` every `stride` tokens that fit in the stream from `offset`."""
    return max(0, (stream_len - offset - block_len) // stride + 1)


def grid_offset(seed: int, epoch: int, stride: int, shift: bool) -> int:
    """Where epoch `epoch`'s grid starts: 0, or a seeded offset in [0, stride) when shifting."""
    if not shift:
        return 0
    return int(torch.randint(stride, (1,), generator=_generator(seed, epoch)))


def _generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class EpochWindowSampler(DistributedSampler):
    """Start positions of one epoch's windows, in a seeded order, this rank's share of them.

    Args:
        stream_len, block_len, stride: the grid (stride = block_len - 1 for causal LM rows).
        seed: decides offsets and order together with the epoch.
        shift: start each epoch's grid at a seeded offset in [0, stride) instead of 0.
        shuffle: visit the windows in a seeded random order instead of stream order.
        rank, world_size: ranks take turns through the epoch's order (rank r gets windows r,
            r + world_size, ...), so their shards are disjoint and together cover the epoch.
            When shuffling (training), each rank gets the same number of windows and the last
            `< world_size` windows of the order are left for another epoch.

    It derives from `DistributedSampler` only so that Lightning leaves it in place instead of
    wrapping it in another one (it shards by itself, and knows the epoch).
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
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if not 0 < stride <= block_len:
            raise ValueError(f"need 0 < stride <= block_len, got {stride=} and {block_len=}")
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got {rank=} and {world_size=}")
        self.stream_len, self.block_len, self.stride = stream_len, block_len, stride
        self.seed, self.shift, self.shuffle = seed, shift, shuffle
        self.rank, self.num_replicas, self.drop_last = rank, world_size, shuffle
        self.epoch = 0
        largest_offset = stride - 1 if shift else 0  # every epoch has the same length
        self.n_windows = window_count(stream_len, block_len, stride, largest_offset)
        """Windows in one epoch, all ranks together."""
        self._resume_at: tuple[int, int] | None = None
        self.started_at = (0, 0)
        """(epoch, windows of the epoch's order consumed before) of the latest iteration."""

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        self.epoch = epoch

    def resume(self, epoch: int, consumed: int) -> None:
        """Make the next iteration of `epoch` skip the first `consumed` windows of its order
        (all ranks together): where a run that stopped there continues, for any world size."""
        if consumed >= self._usable():
            epoch, consumed = epoch + 1, 0
        self.epoch, self._resume_at = epoch, (epoch, consumed)

    def __len__(self) -> int:
        """This rank's windows in a whole epoch."""
        return self._share(self.n_windows)

    def __iter__(self) -> Iterator[int]:
        resume, self._resume_at = self._resume_at, None
        skip = resume[1] if resume is not None and resume[0] == self.epoch else 0
        self.started_at = (self.epoch, skip)
        generator = _generator(self.seed, self.epoch)
        offset = int(torch.randint(self.stride, (1,), generator=generator)) if self.shift else 0
        starts = offset + self.stride * torch.arange(self.n_windows)
        if self.shuffle:
            starts = starts[torch.randperm(self.n_windows, generator=generator)]
        mine = starts[skip + self.rank :: self.num_replicas]
        return iter(mine[: self._share(self.n_windows - skip)].tolist())

    def _share(self, n_windows: int) -> int:
        if self.drop_last:
            return n_windows // self.num_replicas
        return max(0, -(-(n_windows - self.rank) // self.num_replicas))

    def _usable(self) -> int:
        """Windows of an epoch that some rank visits."""
        if self.drop_last:
            return self.num_replicas * (self.n_windows // self.num_replicas)
        return self.n_windows
