"""Packing: fixed-length windows over the EOS-joined stream, in order, overlapping by stride."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from datasets import Dataset

from xformers_lab.data import packing
from xformers_lab.data.packing import pack, stream_len, tokenize
from xformers_lab.data.tokenizers import ByteTokenizer

EOS = 1


def docs_dataset(lengths: list[int]) -> Dataset:
    """Documents of the given lengths whose ids count up, so every token is distinct."""
    starts = np.cumsum([0, *lengths])
    return Dataset.from_dict(
        {"input_ids": [list(range(100 + a, 100 + b)) for a, b in itertools.pairwise(starts)]}
    )


def stream(ds: Dataset) -> list[int]:
    return [i for doc in ds["input_ids"] for i in (*doc, EOS)]


def rows(ds: Dataset) -> np.ndarray:
    return np.asarray(ds.with_format("numpy")[:]["input_ids"])


LENGTHS = [5, 1, 17, 3, 40, 9]


@pytest.mark.parametrize(("block_len", "stride"), [(9, 8), (8, 8), (6, 2)])
def test_rows_are_fixed_length_windows_every_stride(block_len: int, stride: int) -> None:
    ds = docs_dataset(LENGTHS)
    full = stream(ds)
    packed = rows(pack(ds, block_len, stride, EOS))
    n_rows = (len(full) - block_len) // stride + 1
    assert packed.shape == (n_rows, block_len)
    for r, row in enumerate(packed):
        assert row.tolist() == full[r * stride : r * stride + block_len]


def test_causal_packing_overlaps_by_one_and_keeps_the_stream_in_order() -> None:
    ds = docs_dataset(LENGTHS)
    packed = rows(pack(ds, block_len=9, stride=8, eos_id=EOS))
    assert (packed[:-1, -1] == packed[1:, 0]).all()
    rebuilt = [*packed[0], *(t for row in packed[1:] for t in row[1:])]
    assert rebuilt == stream(ds)[: len(rebuilt)]
    assert len(stream(ds)) - len(rebuilt) < 8  # only the last partial window is dropped


def test_each_batch_of_documents_drops_at_most_a_partial_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds = docs_dataset(LENGTHS * 5)  # 30 documents, 405 stream tokens
    monkeypatch.setattr(packing, "PACK_TOKENS_PER_BATCH", 30)  # 2 documents per batch: 15 batches
    full = stream(ds)
    packed = rows(pack(ds, block_len=4, stride=4, eos_id=EOS)).tolist()
    starts = [next(s for s in range(len(full)) if full[s : s + 4] == row) for row in packed]
    assert starts == sorted(starts)
    assert len(full) - 4 * len(packed) < 4 * 15
    assert len(packed) < len(full) // 4  # batch tails were dropped


def test_packing_is_deterministic_and_checks_its_arguments() -> None:
    ds = docs_dataset(LENGTHS)
    assert (rows(pack(ds, 7, 7, EOS)) == rows(pack(ds, 7, 7, EOS))).all()
    assert pack(ds, 7, 7, EOS).features["input_ids"].length == 7
    for stride in (0, 8):
        with pytest.raises(ValueError, match="need 0 < stride <= block_len"):
            pack(ds, 7, stride, EOS)


def test_a_stream_shorter_than_a_block_packs_to_nothing() -> None:
    ds = docs_dataset([2, 3])
    assert stream_len(ds) == 7
    assert len(pack(ds, 8, 8, EOS)) == 0
    assert len(pack(ds, 7, 7, EOS)) == 1


def test_tokenize_encodes_each_document() -> None:
    tok = ByteTokenizer(n_sentinels=3)
    texts = ["héllo", "", "wörld\n"]
    tokenized = tokenize(Dataset.from_dict({"text": texts}), tok)
    assert tokenized.column_names == ["input_ids"]
    assert list(tokenized["input_ids"]) == [tok.encode(t) for t in texts]
