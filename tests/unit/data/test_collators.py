"""Collators: one call signature (rows or a tensor) -> tensors; CLM targets are shifted by one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xformers_lab.data.collators import CausalLMCollator, Collator, row_documents

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


EOS = 1


def test_documents_change_after_each_eos_and_an_eos_ends_its_own() -> None:
    rows = torch.tensor([[5, 6, EOS, 7, EOS, EOS, 8], [EOS, 9, 9, 9, 9, 9, 9]])
    assert row_documents(rows, EOS).tolist() == [[0, 0, 0, 1, 1, 2, 3], [0, 1, 1, 1, 1, 1, 1]]


def test_causal_document_ids_follow_the_inputs() -> None:
    collate = CausalLMCollator().with_document_ids(EOS)
    out = collate([[5, 6, EOS, 7, 8, EOS], [9, EOS, 9, 9, 9, 9]])
    assert out["document_ids"].tolist() == [[0, 0, 0, 1, 1], [0, 0, 1, 1, 1]]
    assert out["document_ids"].shape == out["input_ids"].shape
    assert "document_ids" not in CausalLMCollator()(ROWS)  # only when asked for


def test_an_objective_without_document_layout_refuses_document_ids() -> None:
    class Plain(Collator):
        def collate(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"input_ids": rows}

    assert not Plain().supports_document_ids and CausalLMCollator().supports_document_ids
    with pytest.raises(ValueError, match="Plain does not support document masking"):
        Plain().with_document_ids(EOS)
