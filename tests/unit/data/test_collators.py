"""Collators: one call signature (rows or a tensor) -> tensors; CLM targets are shifted by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xformers_lab.data.collators import CausalLMCollator

ROWS = [[10, 11, 12, 13, 14], [20, 21, 22, 23, 24]]


@pytest.mark.parametrize(
    "batch",
    [
        ROWS,
        torch.tensor(ROWS, dtype=torch.int32),
        [torch.tensor(row) for row in ROWS],
        [np.array(row, dtype=np.int32) for row in ROWS],
    ],
)
def test_causal_targets_are_the_inputs_shifted_by_one(batch: object) -> None:
    out = CausalLMCollator()(batch)  # type: ignore[arg-type]
    assert set(out) == {"input_ids", "labels"}
    assert out["input_ids"].tolist() == [row[:-1] for row in ROWS]
    assert out["labels"].tolist() == [row[1:] for row in ROWS]
    for tensor in out.values():
        assert tensor.dtype == torch.long and tensor.shape == (2, 4) and tensor.is_contiguous()


def test_a_batch_must_be_rows() -> None:
    with pytest.raises(ValueError, match=r"expected a batch of rows \(B, L\), got shape \(5,\)"):
        CausalLMCollator()(ROWS[0])  # type: ignore[arg-type]
