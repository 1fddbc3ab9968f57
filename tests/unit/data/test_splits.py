"""Held-out validation: whole documents when there are enough, else each document's tail."""

from __future__ import annotations

import pytest
from datasets import Dataset

from xformers_lab.data.corpora.splits import split_off_validation, tail_cut
from xformers_lab.errors import UserError


def test_many_documents_hold_out_whole_ones_in_order() -> None:
    docs = [f"doc {i}" for i in range(100)]
    splits = split_off_validation(Dataset.from_dict({"text": docs}), 0.1)
    train, val = list(splits["train"]["text"]), list(splits["validation"]["text"])
    assert len(val) == 10 and sorted(train + val) == sorted(docs)
    assert train == sorted(train, key=docs.index) and val == sorted(val, key=docs.index)
    again = split_off_validation(Dataset.from_dict({"text": docs}), 0.1)
    assert list(again["validation"]["text"]) == val


def test_few_documents_split_each_at_a_line_near_the_fraction() -> None:
    docs = ["".join(f"line {i} of {d}\n" for i in range(50)) for d in "ab"]
    splits = split_off_validation(Dataset.from_dict({"text": docs}), 0.1)
    train, val = list(splits["train"]["text"]), list(splits["validation"]["text"])
    assert [t + v for t, v in zip(train, val, strict=True)] == docs
    assert all(v.startswith("line 45 ") for v in val)


def test_tail_cut_is_nanogpt_cut_moved_to_the_nearest_line_start() -> None:
    text = "aaaa\nbbbb\ncccc\ndddd\n"  # 20 chars; nanoGPT keeps int(20 * 0.6) = 12
    assert tail_cut(text, 0.6) == 10
    assert tail_cut(text, 0.7) == 15  # 14 is nearer 15 than 10
    assert tail_cut("no line breaks here", 0.5) == 9
    assert tail_cut("one line\n", 0.5) == 4  # the only break is the end: cut mid-line


def test_a_corpus_too_short_to_hold_out_anything_fails_in_one_line() -> None:
    with pytest.raises(
        UserError, match=r"too short to hold out data\.val_fraction=0\.1 as validation"
    ):
        split_off_validation(Dataset.from_dict({"text": ["hi\n      "]}), 0.1)
