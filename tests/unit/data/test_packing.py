"""Tokenizing and joining documents into the EOS-separated stream that windows are cut from."""

from __future__ import annotations

import itertools

import numpy as np
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
