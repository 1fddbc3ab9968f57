"""Requests run longest first, each once, in batches of the asked rows or padded-token budget."""

from __future__ import annotations

import pytest

from xformers_lab.evaluation.batching import length_batches

LENGTHS = [5, 30, 12, 30, 1, 7, 19, 12]


@pytest.mark.parametrize(("rows", "budget"), [(3, 0), (1, 0), (None, 60), (None, 1)])
def test_every_request_once_longest_first(rows: int | None, budget: int) -> None:
    batches = length_batches(LENGTHS, rows, budget)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(LENGTHS)))
    assert [LENGTHS[i] for i in flat] == sorted(LENGTHS, reverse=True)


def test_fixed_rows_per_batch() -> None:
    assert [len(b) for b in length_batches(LENGTHS, 3, 0)] == [3, 3, 2]


def test_auto_fills_the_token_budget_by_the_longest_row() -> None:
    batches = length_batches(LENGTHS, None, 60)
    # 2 rows of 30 fill 60; 3 rows of 19 take 57 (a 4th: 76); the last 3 rows are <= 7 wide
    assert batches == [[1, 3], [6, 2, 7], [5, 0, 4]]
    for batch in batches:
        assert len(batch) * LENGTHS[batch[0]] <= 60
    assert length_batches([100], None, 10) == [[0]]  # a row longer than the budget runs alone
