"""Tokenizing and joining documents into the EOS-separated stream that windows are cut from."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from xformers_lab.data.packing import join_documents, stream_len, tokenize
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


LENGTHS = [5, 1, 17, 3, 40, 9]


def test_documents_join_into_one_stream_each_followed_by_eos() -> None:
    ds = docs_dataset(LENGTHS)
    joined = join_documents(ds, EOS)
    assert joined.dtype == np.int32
    assert joined.tolist() == stream(ds)
    assert stream_len(ds) == len(joined)


def test_an_empty_document_still_contributes_its_eos() -> None:
    ds = Dataset.from_dict({"input_ids": [[5, 6], [], [7]]})
    assert join_documents(ds, EOS).tolist() == [5, 6, EOS, EOS, 7, EOS]


def test_tokenize_encodes_each_document() -> None:
    tok = ByteTokenizer(n_sentinels=3)
    texts = ["héllo", "", "wörld\n"]
    tokenized = tokenize(Dataset.from_dict({"text": texts}), tok)
    assert tokenized.column_names == ["input_ids"]
    assert list(tokenized["input_ids"]) == [tok.encode(t) for t in texts]


class CountingTokenizer(ByteTokenizer):
    """Counts the texts it encodes (in this process)."""

    encoded = 0

    def encode_batch(self, texts, parse_special=False):  # type: ignore[no-untyped-def]
        texts = list(texts)
        CountingTokenizer.encoded += len(texts)
        return super().encode_batch(texts, parse_special)


TEXTS = [f"document {i}: " + "lorem ipsum " * i for i in range(50)]


@pytest.mark.parametrize("num_proc", [None, 2])
def test_tokenization_is_cached_on_disk_and_reused(num_proc: int | None) -> None:
    tok = CountingTokenizer(n_sentinels=3)
    first = tokenize(Dataset.from_dict({"text": TEXTS}), tok, num_proc)
    assert first.cache_files and all(Path(f["filename"]).is_file() for f in first.cache_files)
    written = [Path(f["filename"]).stat().st_mtime_ns for f in first.cache_files]
    CountingTokenizer.encoded = 0
    again = tokenize(Dataset.from_dict({"text": TEXTS}), tok, num_proc)  # a new, equal split
    assert CountingTokenizer.encoded == 0  # (workers count in their own process: see mtimes)
    assert again.cache_files == first.cache_files
    assert [Path(f["filename"]).stat().st_mtime_ns for f in again.cache_files] == written
    assert list(again["input_ids"]) == [tok.encode(t) for t in TEXTS]


def test_another_tokenizer_or_text_is_tokenized_afresh() -> None:
    tok = CountingTokenizer(n_sentinels=3)
    base = tokenize(Dataset.from_dict({"text": TEXTS}), tok)
    CountingTokenizer.encoded = 0
    other_tok = tokenize(Dataset.from_dict({"text": TEXTS}), CountingTokenizer(n_sentinels=4))
    other_text = tokenize(Dataset.from_dict({"text": [*TEXTS, "x"]}), tok)
    assert CountingTokenizer.encoded == 2 * len(TEXTS) + 1
    assert len({base._fingerprint, other_tok._fingerprint, other_text._fingerprint}) == 3
