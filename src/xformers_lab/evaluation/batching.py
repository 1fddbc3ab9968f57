"""Requests sorted by length, longest first, and cut into batches that pad little."""

from __future__ import annotations

from collections.abc import Sequence


def length_batches(
    lengths: Sequence[int], batch_size: int | None, max_tokens: int
) -> list[list[int]]:
    """Indices of `lengths` in batches, longest first.

    Sorting puts requests of similar length together (little padding) and runs the largest
    batch first, so a batch that does not fit in memory fails at once. `batch_size` fixes the
    rows per batch; None (`batch_size=auto`) fills each batch up to `max_tokens` padded tokens
    (rows x longest row), at least one row.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches and _fits(batches[-1], lengths[batches[-1][0]], batch_size, max_tokens):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def _fits(batch: list[int], width: int, batch_size: int | None, max_tokens: int) -> bool:
    if batch_size is not None:
        return len(batch) < batch_size
    return (len(batch) + 1) * width <= max_tokens
