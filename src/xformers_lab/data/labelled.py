"""Labelled examples for sequence classification: (text, label) rows from csv/jsonl/json/parquet
files or a hub dataset, tokenized once and served as padded batches (not packed: one example is
one row, and its label belongs to it alone)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from datasets import (
    ClassLabel,
    Dataset,
    DatasetDict,
    Features,
    List,
    Value,
    get_dataset_split_names,
    load_dataset,
)
from torch import Tensor
from torch.utils.data import DataLoader

from xformers_lab.data.config import DataConfig
from xformers_lab.data.corpora.columns import TEXT_DTYPES, has_text
from xformers_lab.data.corpora.failures import reason
from xformers_lab.data.corpora.files import BUILDERS, expand_files
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.errors import UserError

SOURCES = ("text", "hf")
"""`data.source`s that hold labelled examples."""
SPLIT_SEED = 0
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def check_labelled(cfg: DataConfig) -> None:
    """Config time: labelled examples come from structured files or a hub dataset."""
    if cfg.source not in SOURCES:
        raise UserError(
            f"labelled examples cannot come from data={cfg.source}; use data=text data.path="
            "<csv|jsonl|json|parquet with text and label columns> or data=hf data.name=..."
        )
    for key in ("streaming", "document_mask"):
        if getattr(cfg, key):
            raise UserError(f"data.{key} is for packed text corpora, not labelled examples")
    if cfg.source != "text":
        return
    for key, patterns in (("data.path", cfg.paths), ("data.val_path", cfg.val_paths)):
        for file in expand_files(patterns, key) if patterns else []:
            if Path(file).suffix.lower() not in BUILDERS:
                raise UserError(
                    f"{key}: {file} is not csv, jsonl/json or parquet; labelled examples need "
                    f"columns data.text_field={cfg.text_field!r} and "
                    f"data.label_field={cfg.label_field!r}"
                )


def load_labelled(cfg: DataConfig) -> DatasetDict:
    """ "train" and "validation" splits of "text" (str) and "label" (int, numbered from 0).

    Integer labels are kept; class names (strings, or a hub ClassLabel's) are numbered in sorted
    order of the training split's names (ClassLabel: in its own order). Without validation files
    or split, a seeded `val_fraction` of the examples is held out.
    """
    if cfg.source == "text":
        train = _files(cfg.paths, "data.path", cfg)
        val = _files(cfg.val_paths, "data.val_path", cfg) if cfg.val_paths else None
    else:
        train, val = _hub(cfg)
    if val is None:
        train, val = _hold_out(train, cfg.val_fraction)
    return _number_labels(DatasetDict(train=train, validation=val))


class LabelledDataModule(L.LightningDataModule):
    """Serves labelled examples in padded batches: shuffled (seeded) for training, in order for
    validation. `setup` tokenizes both splits once; the collator frames, truncates and pads."""

    def __init__(
        self,
        cfg: DataConfig,
        tokenizer: Tokenizer,
        splits: DatasetDict,
        collator: Callable[[list[dict[str, Any]]], dict[str, Tensor]],
        seed: int,
        num_labels: int,
    ) -> None:
        super().__init__()
        self.cfg, self.tokenizer, self.splits = cfg, tokenizer, splits
        self.collator, self.seed, self.num_labels = collator, seed, num_labels
        self._examples: dict[str, Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        """Tokenize both splits and check the labels fit the classifier; later calls do nothing."""
        if self._examples:
            return
        examples = {name: self._tokenize(split) for name, split in self.splits.items()}
        largest = max(max(split["label"]) for split in examples.values())
        if largest >= self.num_labels:
            raise UserError(
                f"the data has labels up to {largest} but task.num_labels={self.num_labels}; "
                f"set task.num_labels={largest + 1}"
            )
        self._examples = examples

    def train_dataloader(self) -> DataLoader:
        self.setup()
        generator = torch.Generator().manual_seed(self.seed)
        return self._loader(self._examples["train"], shuffle=True, generator=generator)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self._examples["validation"], shuffle=False, generator=None)

    def _tokenize(self, split: Dataset) -> Dataset:
        return split.map(
            _EncodeText(self.tokenizer),
            batched=True,
            remove_columns=["text"],
            features=Features({"label": Value("int64"), "input_ids": List(Value("int32"))}),
            num_proc=self.cfg.num_proc,
            desc="tokenizing",
        )

    def _loader(self, examples: Dataset, shuffle: bool, generator: Any) -> DataLoader:
        return DataLoader(
            examples,
            batch_size=self.cfg.batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=self.collator,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
        )


class _EncodeText:
    """`map` function: "text" -> "input_ids" (no specials); a class, so it pickles and hashes."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[list[int]]]:
        return {"input_ids": self.tokenizer.encode_batch(batch["text"])}


def _files(patterns: list[str], key: str, cfg: DataConfig) -> Dataset:
    files = expand_files(patterns, key)
    where = f"{key}={patterns[0] if len(patterns) == 1 else patterns!r}"
    builders = {BUILDERS.get(Path(f).suffix.lower()) for f in files}
    if None in builders or len(builders) != 1:
        raise UserError(
            f"{where}: labelled examples need files of one kind: csv, jsonl/json or parquet"
        )
    try:
        ds = load_dataset(builders.pop(), data_files=files, split="train", num_proc=cfg.num_proc)
    except Exception as err:  # datasets wraps parse failures in several exception types
        raise UserError(f"could not read {where}: {reason(err)}") from None
    return _columns(ds, cfg, where)


def _hub(cfg: DataConfig) -> tuple[Dataset, Dataset | None]:
    def split(name: str) -> Dataset:
        where = f"data.name={cfg.name!r} split {name!r}"
        ds = load_dataset(cfg.name, cfg.config_name, split=name, num_proc=cfg.num_proc)
        return _columns(ds, cfg, where)

    try:
        train = split(cfg.split)
        names = get_dataset_split_names(cfg.name, cfg.config_name) if cfg.val_split else []
        val_name = cfg.val_split if cfg.val_split and cfg.val_split.split("[")[0] in names else None
        return train, split(val_name) if val_name else None
    except UserError:
        raise
    except Exception as err:  # offline, unknown name, bad split: the user's to fix
        raise UserError(
            f"could not load dataset {cfg.name!r} ({reason(err)}); check data.name, "
            "data.config_name and data.split, or use data=text data.path=<local files>"
        ) from None


def _columns(ds: Dataset, cfg: DataConfig, where: str) -> Dataset:
    """Keep the text and label columns as "text" and "label"; drop examples without text."""
    for key, field in (("text_field", cfg.text_field), ("label_field", cfg.label_field)):
        if field not in ds.column_names:
            raise UserError(
                f"data.{key}={field!r} is not a column of {where}; "
                f"its columns are: {', '.join(ds.column_names)}"
            )
    text = ds.features[cfg.text_field]
    if not isinstance(text, Value) or text.dtype not in TEXT_DTYPES:
        raise UserError(f"data.text_field={cfg.text_field!r} of {where} holds {text}, not text")
    ds = ds.select_columns([cfg.text_field, cfg.label_field])
    ds = ds.rename_columns({cfg.text_field: "text", cfg.label_field: "label"})
    if None in ds["label"]:
        raise UserError(f"{where} has examples without a {cfg.label_field!r}; label or drop them")
    ds = ds.filter(has_text, batched=True, desc="dropping blank examples")
    if len(ds) == 0:
        raise UserError(f"{where} holds no examples with text")
    return ds


def _hold_out(train: Dataset, val_fraction: float) -> tuple[Dataset, Dataset]:
    n_val = int(len(train) * val_fraction)
    if n_val == 0:
        raise UserError(
            f"{len(train)} examples are too few to hold out data.val_fraction={val_fraction} "
            "for validation; add examples or give validation data (data.val_path, data.val_split)"
        )
    order = np.random.default_rng(SPLIT_SEED).permutation(len(train))
    return train.select(np.sort(order[n_val:])), train.select(np.sort(order[:n_val]))


def _number_labels(splits: DatasetDict) -> DatasetDict:
    feature = splits["train"].features["label"]
    if isinstance(feature, ClassLabel) or (
        isinstance(feature, Value) and feature.dtype in (*INT_DTYPES, "bool")
    ):
        ids = [id_ for split in splits.values() for id_ in split.unique("label")]
        if min(ids) < 0:
            raise UserError(f"labels must be class ids from 0 (or class names), found {min(ids)}")
        return splits.cast_column("label", Value("int64"))
    if not (isinstance(feature, Value) and feature.dtype in TEXT_DTYPES):
        raise UserError(f"labels must be class ids from 0 or class names, not {feature}")
    names = sorted(splits["train"].unique("label"))
    number = {name: i for i, name in enumerate(names)}
    unseen = sorted(set(splits["validation"].unique("label")) - set(number))
    if unseen:
        raise UserError(f"validation labels {unseen} never occur in training; known: {names}")
    return splits.map(
        lambda batch: {"label": [number[name] for name in batch["label"]]},
        batched=True,
        features=Features({"text": Value("string"), "label": Value("int64")}),
        desc="numbering labels",
    )
