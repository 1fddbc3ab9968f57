"""source=hf, exercised on local dataset folders (the same code path as hub names), offline."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from xformers_lab.data.config import DataConfig
from xformers_lab.data.corpora import load_corpus
from xformers_lab.errors import UserError

OneLine = Callable[[pytest.ExceptionInfo[BaseException]], str]


def dataset_dir(root: Path, splits: dict[str, list[str]], field: str = "text") -> str:
    root.mkdir()
    for split, docs in splits.items():
        lines = "".join(json.dumps({field: doc, "label": 0}) + "\n" for doc in docs)
        (root / f"{split}.jsonl").write_text(lines, encoding="utf-8")
    return str(root)


def test_train_and_validation_splits_are_used_as_given(tmp_path: Path) -> None:
    name = dataset_dir(tmp_path / "ds", {"train": ["a", "b", "c"], "validation": ["v"]})
    corpus = load_corpus(DataConfig(source="hf", name=name))
    assert list(corpus["train"]["text"]) == ["a", "b", "c"]
    assert list(corpus["validation"]["text"]) == ["v"]
    assert corpus["train"].column_names == ["text"]


def test_split_slices_and_text_field(tmp_path: Path) -> None:
    docs = [f"doc {i}" for i in range(10)]
    name = dataset_dir(tmp_path / "ds", {"train": docs, "test": ["t"]}, field="story")
    cfg = DataConfig(
        source="hf", name=name, split="train[:50%]", val_split="test", text_field="story"
    )
    corpus = load_corpus(cfg)
    assert list(corpus["train"]["text"]) == docs[:5]
    assert list(corpus["validation"]["text"]) == ["t"]


@pytest.mark.parametrize("val_split", ["validation", None])
def test_without_a_validation_split_text_is_held_out(tmp_path: Path, val_split: str | None) -> None:
    docs = [f"doc {i}" for i in range(40)]
    name = dataset_dir(tmp_path / "ds", {"train": docs, "validation": ["unused"]}, field="story")
    if val_split is not None:
        (tmp_path / "ds" / "validation.jsonl").unlink()
    cfg = DataConfig(source="hf", name=name, val_split=val_split, text_field="story")
    corpus = load_corpus(cfg)
    train, val = list(corpus["train"]["text"]), list(corpus["validation"]["text"])
    assert len(val) == 2 and sorted(train + val) == sorted(docs)


def test_unreachable_dataset_fails_in_one_line(one_line: OneLine) -> None:
    with pytest.raises(UserError) as err:
        load_corpus(DataConfig(source="hf", name="nobody/no-such-dataset"))
    message = one_line(err)
    assert message.startswith("could not load dataset 'nobody/no-such-dataset' (")
    assert "data=text data.path=<local files>" in message


def test_missing_text_field_names_the_columns(tmp_path: Path, one_line: OneLine) -> None:
    name = dataset_dir(tmp_path / "ds", {"train": ["a"], "validation": ["b"]}, field="story")
    with pytest.raises(UserError) as err:
        load_corpus(DataConfig(source="hf", name=name))
    assert "data.text_field='text' is not a column of" in one_line(err)
    assert "its columns are: story, label" in one_line(err)
