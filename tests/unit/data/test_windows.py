"""Windows over a stream: a grid every stride, shifted and shuffled per epoch from the seed."""

from __future__ import annotations

import pytest
import torch

from xformers_lab.data.windows import EpochWindowSampler, StreamWindows, window_count

STREAM = torch.arange(100, 203, dtype=torch.int32)  # 103 distinct tokens


def windows(block_len: int, stride: int, *, seed: int = 0, epoch: int = 0, **flags: bool):
    sampler = EpochWindowSampler(len(STREAM), block_len, stride, seed=seed, **flags)
    sampler.set_epoch(epoch)
    starts = list(sampler)
    return starts, StreamWindows(STREAM, block_len).__getitems__(starts)


@pytest.mark.parametrize(("block_len", "stride"), [(9, 8), (8, 8), (6, 2)])
def test_unshifted_grid_is_fixed_length_windows_every_stride(block_len: int, stride: int) -> None:
    starts, rows = windows(block_len, stride, shift=False, shuffle=False)
    n_rows = (len(STREAM) - block_len) // stride + 1
    assert starts == [r * stride for r in range(n_rows)]
    assert rows.shape == (n_rows, block_len)
    for r, row in enumerate(rows):
        assert torch.equal(row, STREAM[r * stride : r * stride + block_len])


def test_causal_rows_overlap_by_one_and_keep_the_stream_in_order() -> None:
    _, rows = windows(9, 8, shift=False, shuffle=False)
    assert torch.equal(rows[:-1, -1], rows[1:, 0])
    rebuilt = torch.cat([rows[0], *(row[1:] for row in rows[1:])])
    assert torch.equal(rebuilt, STREAM[: len(rebuilt)])
    assert len(STREAM) - len(rebuilt) < 8  # only a last partial window is left out


def test_each_epoch_shifts_the_grid_and_never_repeats_a_window() -> None:
    offsets = set()
    for epoch in range(12):
        starts, rows = windows(9, 8, seed=3, epoch=epoch, shift=True, shuffle=True)
        assert len(set(starts)) == len(starts) == window_count(len(STREAM), 9, 8, offset=7)
        assert len({s % 8 for s in starts}) == 1  # one grid per epoch
        assert max(starts) + 9 <= len(STREAM)
        offsets.add(starts[0] % 8)
        assert all(torch.equal(row, STREAM[s : s + 9]) for s, row in zip(starts, rows, strict=True))
    assert len(offsets) > 3


def test_seed_and_epoch_alone_decide_the_windows() -> None:
    same = windows(9, 8, seed=5, epoch=2, shift=True, shuffle=True)[0]
    assert same == windows(9, 8, seed=5, epoch=2, shift=True, shuffle=True)[0]
    assert same != windows(9, 8, seed=5, epoch=3, shift=True, shuffle=True)[0]
    assert same != windows(9, 8, seed=6, epoch=2, shift=True, shuffle=True)[0]


def test_sampler_checks_its_grid() -> None:
    for stride in (0, 10):
        with pytest.raises(ValueError, match="need 0 < stride <= block_len"):
            EpochWindowSampler(100, 9, stride, seed=0, shift=False, shuffle=False)
