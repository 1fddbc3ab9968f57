"""source=text: every file format, globs and lists, validation files or held-out text, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import DatasetDict

from xformers_lab.data.config import DataConfig
from xformers_lab.data.corpora import load_corpus
from xformers_lab.errors import UserError

Write = Callable[[Path, str], Path]
OneLine = Callable[[pytest.ExceptionInfo[BaseException]], str]
DOCS = [f"document number {i}\nwith two lines" for i in range(40)]


def load(path: object, **fields: object) -> DatasetDict:
    return load_corpus(DataConfig(source="text", path=path, **fields))  # type: ignore[arg-type]


def texts(corpus: DatasetDict) -> list[str]:
    return list(corpus["train"]["text"]) + list(corpus["validation"]["text"])


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_one_text_file_splits_like_nanogpt(tmp_path: Path, write: Write) -> None:
    text = "".join(f"Line {i}: to be or not to be.\n" for i in range(100))
    corpus = load(str(write(tmp_path / "input.txt", text)), val_fraction=0.1)
    (train,), (val,) = corpus["train"]["text"], corpus["validation"]["text"]
    assert train + val == text
    assert val.startswith("Line 90:")


@pytest.mark.parametrize(
    ("sample_by", "n_docs"), [("document", 1), ("paragraph", 40), ("line", 80)]
)
def test_sample_by_cuts_plain_text(
    tmp_path: Path, write: Write, sample_by: str, n_docs: int
) -> None:
    path = write(tmp_path / "docs.txt", "\n\n".join(DOCS))
    corpus = load(str(path), sample_by=sample_by)
    assert len(corpus["train"]) + len(corpus["validation"]) == n_docs + (n_docs == 1)
    if sample_by == "paragraph":
        assert sorted(texts(corpus)) == sorted(DOCS)


def test_jsonl_json_csv_and_parquet_read_text_field(tmp_path: Path) -> None:
    rows = [{"id": i, "body": doc} for i, doc in enumerate(DOCS)]
    write_jsonl(tmp_path / "a.jsonl", rows[:10])
    (tmp_path / "b.json").write_text(json.dumps(rows[10:20]), encoding="utf-8")
    pa_table = pa.Table.from_pylist(rows[20:30])
    pa_table.to_pandas().to_csv(tmp_path / "c.csv", index=False)
    pq.write_table(pa.Table.from_pylist(rows[30:]), tmp_path / "d.parquet")
    for name, expected in [("a.jsonl", 10), ("b.json", 10), ("c.csv", 10), ("d.parquet", 10)]:
        corpus = load(str(tmp_path / name), text_field="body", val_fraction=0.1)
        assert len(texts(corpus)) == expected and set(texts(corpus)) <= set(DOCS), name
    everything = load(str(tmp_path / "[a-d].*"), text_field="body")
    assert sorted(texts(everything)) == sorted(DOCS)
    assert everything["train"].column_names == ["text"]


def test_globs_and_lists_of_files_mix_formats(tmp_path: Path, write: Write) -> None:
    for i in range(3):
        write(tmp_path / "books" / f"book{i}.txt", f"book {i}\n" * 20)
    write_jsonl(tmp_path / "extra.jsonl", [{"text": "from json"}])
    corpus = load([str(tmp_path / "books" / "*.txt"), str(tmp_path / "extra.jsonl")])
    # four documents are too few to hold out whole ones: each one's tail validates instead
    train, val = corpus["train"]["text"], corpus["validation"]["text"]
    rebuilt = [head + tail for head, tail in zip(train, val, strict=True)]
    assert rebuilt == [f"book {i}\n" * 20 for i in range(3)] + ["from json"]


def test_recursive_globs(tmp_path: Path, write: Write) -> None:
    write(tmp_path / "a" / "b" / "deep.txt", "deep\n")
    write(tmp_path / "top.txt", "top\n")
    corpus = load(str(tmp_path / "**" / "*.txt"), sample_by="line", val_fraction=0.5)
    assert sorted(texts(corpus)) == ["deep", "top"]


def test_val_path_gives_the_validation_split(tmp_path: Path, write: Write) -> None:
    train = write(tmp_path / "train.txt", "train text\n")
    val = write(tmp_path / "val.txt", "held out\n")
    corpus = load(str(train), val_path=str(val))
    assert list(corpus["train"]["text"]) == ["train text\n"]
    assert list(corpus["validation"]["text"]) == ["held out\n"]


def test_blank_documents_are_dropped(tmp_path: Path) -> None:
    rows = [{"text": doc} for doc in DOCS] + [{"text": "   "}, {"text": ""}, {"other": "x"}]
    corpus = load(str(write_jsonl(tmp_path / "rows.jsonl", rows)))
    assert sorted(texts(corpus)) == sorted(DOCS)


@pytest.mark.parametrize(
    ("setup", "fields", "message"),
    [
        (lambda d: None, {"path": "missing.txt"}, "data.path='{d}/missing.txt' does not exist"),
        (lambda d: None, {"path": "*.md"}, "data.path='{d}/*.md' matches no files"),
        (lambda d: None, {"path": ""}, "is a folder"),
        (lambda d: (d / "e.txt").touch(), {"path": "e.txt"}, "holds no text (empty files)"),
        (
            lambda d: (d / "w.txt").write_text(" \n\n\t"),
            {"path": "w.txt"},
            "holds no text (empty or whitespace only)",
        ),
        (
            lambda d: (d / "r.jsonl").write_text('{"body": "x"}\n'),
            {"path": "r.jsonl"},
            "data.text_field='text' is not a column of data.path='{d}/r.jsonl'; "
            "its columns are: body",
        ),
        (
            lambda d: (d / "n.csv").write_text("text\n1\n2\n"),
            {"path": "n.csv"},
            "holds Value('int64'), not text",
        ),
        (
            lambda d: (d / "bad.txt").write_bytes(b"caf\xe9\n"),
            {"path": "bad.txt"},
            "{d}/bad.txt is not UTF-8 text",
        ),
        (
            lambda d: (d / "bad.jsonl").write_text('{"text": \n'),
            {"path": "bad.jsonl"},
            "could not read {d}/bad.jsonl as json: ArrowInvalid",
        ),
        (
            lambda d: (d / "x.txt").write_text("x\n"),
            {"path": "x.txt", "val_path": "nope/*.txt"},
            "data.val_path='{d}/nope/*.txt' matches no files",
        ),
    ],
)
def test_bad_files_fail_in_one_line(
    tmp_path: Path,
    one_line: OneLine,
    setup: Callable[[Path], object],
    fields: dict[str, str],
    message: str,
) -> None:
    setup(tmp_path)
    located = {key: str(tmp_path / value) for key, value in fields.items()}
    with pytest.raises(UserError) as err:
        load(**{"path": located.pop("path"), **located})
    assert message.format(d=tmp_path) in one_line(err)
