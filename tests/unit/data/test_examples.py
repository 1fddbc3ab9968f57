"""Examples with named fields: the roles' columns from csv/jsonl, held-out validation, encoded
once and served in padded batches; a classifier's labels numbered from 0; every mistake in one
line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from xformers_lab.core import TransformerConfig
from xformers_lab.data.collators import ClassificationCollator
from xformers_lab.data.config import DataConfig
from xformers_lab.data.examples import example_texts, load_examples
from xformers_lab.data.examples_module import ExamplesDataModule
from xformers_lab.data.sources import check_examples
from xformers_lab.data.tokenizers import ByteTokenizer
from xformers_lab.errors import UserError
from xformers_lab.tasks.classify import Classification, ClassifyOptions, EncodeText

Write = Callable[[Path, str], Path]
TOKENIZER = ByteTokenizer(n_sentinels=0)


def csv_rows(n: int, label: Callable[[int], object] = lambda i: i % 2) -> str:
    return "text,label\n" + "".join(f"example number {i},{label(i)}\n" for i in range(n))


def jsonl_rows(rows: list[tuple[str, object]], text: str = "text", label: str = "label") -> str:
    return "".join(json.dumps({text: t, label: y}) + "\n" for t, y in rows)


def data(path: Path, **kwargs: object) -> DataConfig:
    return DataConfig(source="text", path=str(path), **kwargs)  # type: ignore[arg-type]


def classifier(num_labels: int = 2) -> Classification:
    config = TransformerConfig(vocab_size=TOKENIZER.vocab_size, arch="encoder", d_model=16)
    return Classification(config, TOKENIZER, ClassifyOptions(num_labels=num_labels))


def load_labelled(cfg: DataConfig, num_labels: int = 10) -> object:
    """What a classifier trains on: its roles loaded, its labels numbered."""
    return classifier(num_labels).prepare_examples(load_examples(cfg, Classification.fields))


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
        fields={"label": "stars"},
    )
    objective = classifier(num_labels=3)
    splits = objective.prepare_examples(load_examples(cfg, Classification.fields))
    assert splits["train"]["label"] == [2, 0, 1, 2]  # neg, neutral, pos
    assert splits["validation"]["label"] == [2, 0]
    assert objective.label_names == ["neg", "neutral", "pos"]
    assert objective.head_config()["label_names"] == ["neg", "neutral", "pos"]


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
def test_mistakes_in_example_files_fail_in_one_line(
    tmp_path: Path, write: Write, one_line, train: str, val: str | None, message: str
) -> None:
    val_path = str(write(tmp_path / "val.csv", val)) if val else None
    cfg = DataConfig(source="text", path=str(write(tmp_path / "t.csv", train)), val_path=val_path)
    with pytest.raises(UserError) as err:
        load_labelled(cfg)
    assert message in one_line(err)


def test_only_structured_files_or_a_hub_dataset_hold_examples(tmp_path: Path, write: Write) -> None:
    roles = Classification.fields
    check_examples(data(write(tmp_path / "a.csv", csv_rows(4))), roles)
    check_examples(DataConfig(source="hf", name="imdb"), roles)
    with pytest.raises(UserError, match="cannot come from data=pystdlib"):
        check_examples(DataConfig(source="pystdlib"), roles)
    with pytest.raises(UserError, match="is not csv, jsonl/json or parquet"):
        check_examples(data(write(tmp_path / "a.txt", "great film\n")), roles)
    with pytest.raises(UserError, match=r"data\.streaming is for packed text corpora"):
        check_examples(DataConfig(source="hf", name="imdb", streaming=True), roles)


def test_any_roles_map_to_named_columns_and_blank_text_is_dropped(
    tmp_path: Path, write: Write
) -> None:
    rows = [{"src": f"q{i}" if i != 2 else " ", "tgt": f"a{i}", "n": i} for i in range(6)]
    path = write(tmp_path / "pairs.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    cfg = data(path, val_path=str(path), fields={"source": "src", "target": "tgt"})
    roles = {"source": "text", "target": "text", "n": "any"}
    splits = load_examples(cfg, roles)
    assert splits["train"].column_names == ["source", "target", "n"]
    assert splits["train"]["n"] == [0, 1, 3, 4, 5]  # the blank source is dropped
    assert example_texts(splits, roles)[:2] == ["q0", "q1"]
    with pytest.raises(UserError, match=r"data\.n_field='n' of .* holds .*, not text"):
        load_examples(cfg, {"n": "text"})


def test_collator_frames_truncates_and_pads() -> None:
    collate = ClassificationCollator(TOKENIZER, seq_len=6)
    batch = collate(
        [{"input_ids": [10, 11], "label": 1}, {"input_ids": list(range(20, 30)), "label": 0}]
    )
    cls, sep, pad = TOKENIZER.cls_id, TOKENIZER.sep_id, TOKENIZER.pad_id
    assert batch["input_ids"].tolist() == [[cls, 10, 11, sep, pad, pad], [cls, 20, 21, 22, 23, sep]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]
    assert batch["labels"].tolist() == [1, 0]


def datamodule(tmp_path: Path, write: Write, seed: int = 0) -> ExamplesDataModule:
    cfg = data(write(tmp_path / "train.csv", csv_rows(60, lambda i: i % 3)), batch_size=8)
    return ExamplesDataModule(
        cfg,
        load_labelled(cfg),
        encode=EncodeText(TOKENIZER),
        collator=ClassificationCollator(TOKENIZER, seq_len=cfg.seq_len),
        seed=seed,
    )


def test_datamodule_serves_padded_batches_in_a_seeded_order(tmp_path: Path, write: Write) -> None:
    dm = datamodule(tmp_path, write)
    first = next(iter(dm.train_dataloader()))
    assert first["input_ids"].shape[0] == 8 and first["input_ids"][:, 0].eq(TOKENIZER.cls_id).all()
    real = first["attention_mask"].bool()
    assert first["input_ids"][~real].eq(TOKENIZER.pad_id).all()
    again = next(iter(datamodule(tmp_path, write).train_dataloader()))
    assert torch.equal(first["input_ids"], again["input_ids"])
    val = [b["labels"] for b in dm.val_dataloader()]
    assert sum(len(labels) for labels in val) == 3  # 5% of 60, in stream order


def test_labels_beyond_num_labels_are_refused(tmp_path: Path, write: Write, one_line) -> None:
    cfg = data(write(tmp_path / "train.csv", csv_rows(60, lambda i: i % 3)))
    with pytest.raises(UserError) as err:
        load_labelled(cfg, num_labels=2)
    assert (
        one_line(err) == "the data has labels up to 2 but task.num_labels=2; set task.num_labels=3"
    )


def test_length_grouped_batches_hold_similar_lengths_and_every_example_once() -> None:
    from xformers_lab.data.examples_module import MEGA_BATCHES, LengthGroupedSampler

    lengths = [(i * 37) % 101 for i in range(1000)]
    sampler = LengthGroupedSampler(
        lengths, batch_size=4, generator=torch.Generator().manual_seed(0)
    )
    first, second = list(sampler), list(sampler)
    assert sorted(first) == list(range(1000)) and first != second  # a new order each epoch
    group = MEGA_BATCHES * 4
    for start in range(0, 1000, group):
        chunk = [lengths[i] for i in first[start : start + group]]
        assert chunk == sorted(chunk, reverse=True)
    again = LengthGroupedSampler(lengths, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert list(again) == first  # seeded

    def padding(order: list[int]) -> int:
        batches = [order[s : s + 4] for s in range(0, 1000, 4)]
        return sum(max(lengths[i] for i in b) * 4 - sum(lengths[i] for i in b) for b in batches)

    shuffled = torch.randperm(1000, generator=torch.Generator().manual_seed(0)).tolist()
    assert padding(first) < padding(shuffled) / 10
