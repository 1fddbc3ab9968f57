"""Examples with named fields (text/label, source/target, prompt/chosen/rejected, tokens/tags):
rows of csv, jsonl/json or parquet files or of a hub/local `datasets` dataset, with the columns
an objective names renamed to its roles. One example is one training row (never packed)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict, Value, get_dataset_split_names, load_dataset

from xformers_lab.data.config import DataConfig
from xformers_lab.data.corpora.columns import TEXT_DTYPES
from xformers_lab.data.corpora.failures import reason
from xformers_lab.data.sources import BUILDERS, OPTIONAL, Fields, expand_files, kind_of
from xformers_lab.errors import UserError

log = logging.getLogger(__name__)

SPLIT_SEED = 0


def load_examples(cfg: DataConfig, roles: Fields) -> DatasetDict:
    """ "train" and "validation" splits with one column per role, named as the role.

    Without validation files or split, a seeded `val_fraction` of the examples is held out.
    Examples whose text roles are blank are dropped; a missing column, a missing value or an
    empty split is one line naming the data and the field.
    """
    if cfg.source == "text":
        train = _files(cfg.paths, "data.path", cfg, roles)
        val = _files(cfg.val_paths, "data.val_path", cfg, roles) if cfg.val_paths else None
    else:
        train, val = _hub(cfg, roles)
    if val is None:
        train, val = _hold_out(train, cfg.val_fraction)
    return DatasetDict(train=train, validation=val)


def example_texts(splits: DatasetDict, roles: Fields) -> list[str]:
    """The training split's text (its text and words roles) to train a tokenizer on."""
    train = splits["train"]
    texts: list[str] = []
    for role, kind in roles.items():
        if role not in train.column_names:
            continue
        if kind_of(kind) == "text":
            texts += train[role]
        elif kind_of(kind) == "words":
            texts += [" ".join(words) for words in train[role]]
        elif kind_of(kind) == "messages":
            texts += [m["content"] for chat in train[role] for m in chat]
    return texts


def _files(patterns: list[str], key: str, cfg: DataConfig, roles: Fields) -> Dataset:
    files = expand_files(patterns, key)
    where = f"{key}={patterns[0] if len(patterns) == 1 else patterns!r}"
    builders = {BUILDERS.get(Path(f).suffix.lower()) for f in files}
    if None in builders or len(builders) != 1:
        raise UserError(f"{where}: examples need files of one kind: csv, jsonl/json or parquet")
    try:
        ds = load_dataset(builders.pop(), data_files=files, split="train", num_proc=cfg.num_proc)
    except Exception as err:  # datasets wraps parse failures in several exception types
        raise UserError(f"could not read {where}: {reason(err)}") from None
    return _columns(ds, cfg, roles, where)


def _hub(cfg: DataConfig, roles: Fields) -> tuple[Dataset, Dataset | None]:
    def split(name: str) -> Dataset:
        where = f"data.name={cfg.name!r} split {name!r}"
        ds = load_dataset(cfg.name, cfg.config_name, split=name, num_proc=cfg.num_proc)
        return _columns(ds, cfg, roles, where)

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


def _columns(ds: Dataset, cfg: DataConfig, roles: Fields, where: str) -> Dataset:
    """Keep the roles' columns, named as the roles; drop (and count) examples whose text is
    blank."""
    columns = {role: cfg.column(role) for role in roles}
    optional = [role for role, kind in roles.items() if kind.endswith(OPTIONAL)]
    if optional and not any(columns[role] in ds.column_names for role in roles):
        named = ", ".join(f"data.{role}_field={column!r}" for role, column in columns.items())
        raise UserError(
            f"{where} has none of the columns {named}; its columns are: "
            f"{', '.join(ds.column_names)}"
        )
    for role, column in list(columns.items()):
        if column not in ds.column_names:
            if role in optional:
                del columns[role]
                continue
            raise UserError(
                f"data.{role}_field={column!r} is not a column of {where}; "
                f"its columns are: {', '.join(ds.column_names)}"
            )
        feature, kind = ds.features[column], kind_of(roles[role])
        if kind == "text" and not _is_text(feature):
            raise UserError(f"data.{role}_field={column!r} of {where} holds {feature}, not text")
        if kind == "words" and not _is_text(getattr(feature, "feature", None)):
            raise UserError(
                f"data.{role}_field={column!r} of {where} holds {feature}, not lists of words"
            )
        if kind == "messages" and not _is_chat(getattr(feature, "feature", None)):
            raise UserError(
                f"data.{role}_field={column!r} of {where} holds {feature}, not lists of "
                "{role, content} messages"
            )
    ds = ds.select_columns(list(columns.values()))
    ds = ds.rename_columns({column: role for role, column in columns.items() if column != role})
    for role in columns:
        if None in ds[role]:
            raise UserError(
                f"{where} has examples without a {columns[role]!r}; fill them in or drop them"
            )
    texts = [role for role in columns if kind_of(roles[role]) == "text"]
    before = len(ds)
    ds = ds.filter(_Filled(texts), batched=True, desc="dropping blank examples")
    if len(ds) == 0:
        raise UserError(f"{where} holds no examples with text in {', '.join(texts) or 'them'}")
    if len(ds) < before:
        blank = " or ".join(repr(columns[role]) for role in texts)
        log.warning("%s: dropped %d of %d examples with a blank %s", where, before - len(ds),
                    before, blank)  # fmt: skip
    return ds


class _Filled:
    """`filter` function: none of the example's text roles is blank."""

    def __init__(self, roles: list[str]) -> None:
        self.roles = roles

    def __call__(self, batch: dict[str, list[Any]]) -> list[bool]:
        rows = len(next(iter(batch.values())))
        return [all(batch[role][i].strip() for role in self.roles) for i in range(rows)]


def _is_text(feature: Any) -> bool:
    return isinstance(feature, Value) and feature.dtype in TEXT_DTYPES


def _is_chat(feature: Any) -> bool:
    """A message: a struct with `role` and `content` strings."""
    return isinstance(feature, dict) and all(_is_text(feature.get(k)) for k in ("role", "content"))


def _hold_out(train: Dataset, val_fraction: float) -> tuple[Dataset, Dataset]:
    n_val = int(len(train) * val_fraction)
    if n_val == 0:
        raise UserError(
            f"{len(train)} examples are too few to hold out data.val_fraction={val_fraction} "
            "for validation; add examples or give validation data (data.val_path, data.val_split)"
        )
    order = np.random.default_rng(SPLIT_SEED).permutation(len(train))
    return train.select(np.sort(order[n_val:])), train.select(np.sort(order[:n_val]))
