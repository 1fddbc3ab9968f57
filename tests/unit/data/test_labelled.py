"""Labelled examples: text and label columns from csv/jsonl, labels numbered from 0, held-out
validation, padded batches; every mistake in one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from xformers_lab.data.collators import ClassificationCollator
from xformers_lab.data.config import DataConfig
from xformers_lab.data.labelled import LabelledDataModule, check_labelled, load_labelled
from xformers_lab.data.tokenizers import ByteTokenizer
from xformers_lab.errors import UserError

Write = Callable[[Path, str], Path]
TOKENIZER = ByteTokenizer(n_sentinels=0)


def csv_rows(n: int, label: Callable[[int], object] = lambda i: i % 2) -> str:
    return "text,label\n" + "".join(f"example number {i},{label(i)}\n" for i in range(n))


def jsonl_rows(rows: list[tuple[str, object]], text: str = "text", label: str = "label") -> str:
    return "".join(json.dumps({text: t, label: y}) + "\n" for t, y in rows)


def data(path: Path, **kwargs: object) -> DataConfig:
    return DataConfig(source="text", path=str(path), **kwargs)  # type: ignore[arg-type]


def test_csv_with_integer_labels_and_a_seeded_hold_out(tmp_path: Path, write: Write) -> None:
    cfg = data(write(tmp_path / "train.csv", csv_rows(40)), val_fraction=0.25)
    splits = load_labelled(cfg)
    assert splits["train"].column_names == ["text", "label"] and len(splits["validation"]) == 10
    assert splits["train"].features["label"].dtype == "int64"
    texts = set(splits["train"]["text"]) | set(splits["validation"]["text"])
    assert len(texts) == 40
    again = load_labelled(cfg)
    assert again["validation"]["text"] == splits["validation"]["text"]


def test_named_columns_and_class_names_numbered_in_sorted_order(
    tmp_path: Path, write: Write
) -> None:
    train = [("loved it", "pos"), ("hated it", "neg"), ("meh", "neutral"), ("fine", "pos")]
    cfg = DataConfig(
        source="text",
        path=str(write(tmp_path / "train.jsonl", jsonl_rows(train, "review", "stars"))),
        val_path=str(write(tmp_path / "val.jsonl", jsonl_rows(train[:2], "review", "stars"))),
        text_field="review",
        label_field="stars",
    )
    splits = load_labelled(cfg)
    assert splits["train"]["label"] == [2, 0, 1, 2]  # neg, neutral, pos
    assert splits["validation"]["label"] == [2, 0]


@pytest.mark.parametrize(
    ("train", "val", "message"),
    [
        (csv_rows(20).replace("label", "stars"), None, "data.label_field='label' is not a column"),
        (csv_rows(20, lambda i: i / 2), None, "labels must be class ids from 0 or class names"),
        (csv_rows(20, lambda i: -i), None, "labels must be class ids from 0"),
        (csv_rows(5), None, "5 examples are too few to hold out"),
        (
            csv_rows(20, lambda i: "ab"[i % 2]),
            csv_rows(4, lambda i: "c"),
            "never occur in training",
        ),
        (csv_rows(20, lambda i: "" if i == 3 else i % 2), None, "examples without a 'label'"),
    ],
)
def test_mistakes_in_labelled_files_fail_in_one_line(
    tmp_path: Path, write: Write, one_line, train: str, val: str | None, message: str
) -> None:
    val_path = str(write(tmp_path / "val.csv", val)) if val else None
    cfg = DataConfig(source="text", path=str(write(tmp_path / "t.csv", train)), val_path=val_path)
    with pytest.raises(UserError) as err:
        load_labelled(cfg)
    assert message in one_line(err)


def test_only_structured_files_or_a_hub_dataset_hold_labels(tmp_path: Path, write: Write) -> None:
    check_labelled(data(write(tmp_path / "a.csv", csv_rows(4))))
    check_labelled(DataConfig(source="hf", name="imdb"))
    with pytest.raises(UserError, match="cannot come from data=pystdlib"):
        check_labelled(DataConfig(source="pystdlib"))
    with pytest.raises(UserError, match="is not csv, jsonl/json or parquet"):
        check_labelled(data(write(tmp_path / "a.txt", "great film\n")))
    with pytest.raises(UserError, match=r"data\.streaming is for packed text corpora"):
        check_labelled(DataConfig(source="hf", name="imdb", streaming=True))


def test_collator_frames_truncates_and_pads() -> None:
    collate = ClassificationCollator(TOKENIZER, seq_len=6)
    batch = collate(
        [{"input_ids": [10, 11], "label": 1}, {"input_ids": list(range(20, 30)), "label": 0}]
    )
    cls, sep, pad = TOKENIZER.cls_id, TOKENIZER.sep_id, TOKENIZER.pad_id
    assert batch["input_ids"].tolist() == [[cls, 10, 11, sep, pad, pad], [cls, 20, 21, 22, 23, sep]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]
    assert batch["labels"].tolist() == [1, 0]


def datamodule(
    tmp_path: Path, write: Write, num_labels: int = 2, seed: int = 0
) -> LabelledDataModule:
    cfg = data(write(tmp_path / "train.csv", csv_rows(60, lambda i: i % 3)), batch_size=8)
    return LabelledDataModule(
        cfg,
        TOKENIZER,
        load_labelled(cfg),
        collator=ClassificationCollator(TOKENIZER, seq_len=cfg.seq_len),
        seed=seed,
        num_labels=num_labels,
    )


def test_datamodule_serves_padded_batches_in_a_seeded_order(tmp_path: Path, write: Write) -> None:
    dm = datamodule(tmp_path, write, num_labels=3)
    first = next(iter(dm.train_dataloader()))
    assert first["input_ids"].shape[0] == 8 and first["input_ids"][:, 0].eq(TOKENIZER.cls_id).all()
    real = first["attention_mask"].bool()
    assert first["input_ids"][~real].eq(TOKENIZER.pad_id).all()
    again = next(iter(datamodule(tmp_path, write, num_labels=3).train_dataloader()))
    assert torch.equal(first["input_ids"], again["input_ids"])
    val = [b["labels"] for b in dm.val_dataloader()]
    assert sum(len(labels) for labels in val) == 3  # 5% of 60, in stream order


def test_labels_beyond_num_labels_are_refused(tmp_path: Path, write: Write, one_line) -> None:
    with pytest.raises(UserError) as err:
        datamodule(tmp_path, write, num_labels=2).setup()
    assert (
        one_line(err) == "the data has labels up to 2 but task.num_labels=2; set task.num_labels=3"
    )
