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
    batch = StreamWindows(STREAM, block_len).__getitems__(starts)
    assert batch.starts.tolist() == starts
    return starts, batch.rows


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


def sampler(world_size: int = 1, rank: int = 0, shuffle: bool = True) -> EpochWindowSampler:
    return EpochWindowSampler(
        len(STREAM), 9, 8, seed=4, shift=shuffle, shuffle=shuffle, rank=rank, world_size=world_size
    )


@pytest.mark.parametrize("world_size", [2, 3, 5])
@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_get_disjoint_shards_that_together_cover_the_epoch(
    world_size: int, shuffle: bool
) -> None:
    everything = list(sampler(shuffle=shuffle))
    shards = [list(sampler(world_size, rank, shuffle)) for rank in range(world_size)]
    union = [start for shard in shards for start in shard]
    assert len(union) == len(set(union))  # disjoint
    if shuffle:  # training: equal shards; the order's last < world_size windows wait
        assert {len(shard) for shard in shards} == {len(everything) // world_size}
        assert set(union) <= set(everything) and len(everything) - len(union) < world_size
    else:  # validation: every window exactly once
        assert sorted(union) == sorted(everything)
    assert [len(sampler(world_size, r, shuffle)) for r in range(world_size)] == list(
        map(len, shards)
    )


@pytest.mark.parametrize(("world_size", "resumed_world_size"), [(1, 1), (2, 2), (2, 3), (3, 1)])
def test_resuming_skips_what_was_consumed_for_any_world_size(
    world_size: int, resumed_world_size: int
) -> None:
    full = sampler()
    full.set_epoch(2)
    order = list(full)  # the epoch's order, all ranks together
    consumed = 2 * world_size  # each rank consumed two windows
    shards = []
    for rank in range(resumed_world_size):
        resumed = sampler(resumed_world_size, rank)
        resumed.resume(2, consumed)
        assert resumed.epoch == 2
        shards.append(list(resumed))
        assert resumed.started_at == (2, consumed)
        assert list(resumed) == order[rank::resumed_world_size][: len(order) // resumed_world_size]
    rest = sorted(start for shard in shards for start in shard)
    assert set(rest) <= set(order[consumed:]) and len(order) - consumed - len(rest) < 3


def test_resuming_at_the_end_of_an_epoch_starts_the_next() -> None:
    s = sampler()
    s.resume(4, len(s))
    assert s.epoch == 5 and s.started_at == (0, 0)
    assert next(iter(s)) is not None and s.started_at == (5, 0)


def test_lightning_leaves_the_sampler_alone_under_ddp() -> None:
    assert isinstance(sampler(), torch.utils.data.DistributedSampler)
    with pytest.raises(ValueError, match="need 0 <= rank < world_size"):
        sampler(world_size=2, rank=2)
