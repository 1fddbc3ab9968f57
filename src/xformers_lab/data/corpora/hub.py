"""source=hf: a Hugging Face dataset by name, or a local dataset directory."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from datasets import Dataset, DatasetDict, get_dataset_split_names, load_dataset

from xformers_lab.data.config import DataConfig
from xformers_lab.data.corpora.columns import text_column
from xformers_lab.data.corpora.failures import reason
from xformers_lab.data.corpora.splits import split_off_validation
from xformers_lab.errors import UserError

T = TypeVar("T")


def load_hub(cfg: DataConfig) -> DatasetDict:
    """`cfg.split` to train; `cfg.val_split` to validate when the dataset has it, else text held
    out from the training split."""
    train = _split(cfg, cfg.split)
    if cfg.val_split is not None:
        names = _call(cfg, lambda: get_dataset_split_names(cfg.name, cfg.config_name))
        if cfg.val_split.split("[", 1)[0] in names:
            return DatasetDict(train=train, validation=_split(cfg, cfg.val_split))
    return split_off_validation(train, cfg.val_fraction)


def _split(cfg: DataConfig, split: str) -> Dataset:
    ds = _call(
        cfg, lambda: load_dataset(cfg.name, cfg.config_name, split=split, num_proc=cfg.num_proc)
    )
    return text_column(ds, cfg.text_field, f"data.name={cfg.name!r} split {split!r}")


def _call(cfg: DataConfig, load: Callable[[], T]) -> T:
    try:
        return load()
    except Exception as err:  # offline, unknown name, bad split, broken files: the user's to fix
        raise UserError(
            f"could not load dataset {cfg.name!r} ({reason(err)}); check data.name, "
            "data.config_name and data.split, or use data=text data.path=<local files>"
        ) from None
