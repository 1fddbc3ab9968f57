"""source=hf: a Hugging Face dataset by name, or a local dataset directory."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from datasets import (
    Dataset,
    DatasetDict,
    IterableDataset,
    IterableDatasetDict,
    get_dataset_split_names,
    load_dataset,
)

from xformers_lab.data.config import DataConfig
from xformers_lab.data.corpora.columns import text_column
from xformers_lab.data.corpora.failures import reason
from xformers_lab.data.corpora.splits import split_off_validation
from xformers_lab.errors import UserError

T = TypeVar("T")


def load_hub(cfg: DataConfig) -> DatasetDict | IterableDatasetDict:
    """`cfg.split` to train; `cfg.val_split` to validate when the dataset has it, else text held
    out from the training split. With `cfg.streaming` the splits are read lazily."""
    train = _split(cfg, cfg.split)
    if cfg.val_split is not None:
        names = _call(cfg, lambda: get_dataset_split_names(cfg.name, cfg.config_name))
        if cfg.val_split.split("[", 1)[0] in names:
            splits = {"train": train, "validation": _split(cfg, cfg.val_split)}
            return IterableDatasetDict(splits) if cfg.streaming else DatasetDict(splits)
    return split_off_validation(train, cfg.val_fraction)


def _split(cfg: DataConfig, split: str) -> Dataset | IterableDataset:
    options = {"streaming": True} if cfg.streaming else {"num_proc": cfg.num_proc}
    where = f"data.name={cfg.name!r} split {split!r}"
    return _call(
        cfg,
        lambda: text_column(
            load_dataset(cfg.name, cfg.config_name, split=split, **options), cfg.text_field, where
        ),
    )


def _call(cfg: DataConfig, load: Callable[[], T]) -> T:
    try:
        return load()
    except UserError:
        raise
    except Exception as err:  # offline, unknown name, bad split, broken files: the user's to fix
        raise UserError(
            f"could not load dataset {cfg.name!r} ({reason(err)}); check data.name, "
            "data.config_name and data.split, or use data=text data.path=<local files>"
        ) from None
