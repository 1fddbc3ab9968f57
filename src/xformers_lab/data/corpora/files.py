"""source=text: the user's own files (plain text, JSON lines, CSV, Parquet), globs allowed."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

from datasets import (
    Dataset,
    DatasetDict,
    IterableDataset,
    IterableDatasetDict,
    concatenate_datasets,
    load_dataset,
)

from xformers_lab.data.config import DataConfig
from xformers_lab.data.corpora.columns import text_column
from xformers_lab.data.corpora.failures import reason
from xformers_lab.data.corpora.splits import split_off_validation
from xformers_lab.data.sources import BUILDERS, expand_files
from xformers_lab.errors import UserError


def load_text_files(cfg: DataConfig) -> DatasetDict | IterableDatasetDict:
    """Train on `cfg.path`; validate on `cfg.val_path`, or on text held out from `cfg.path`.

    With `cfg.streaming` the files are read lazily (an `IterableDatasetDict`)."""
    train = _load(cfg.paths, "data.path", cfg)
    if cfg.val_paths:
        splits = {"train": train, "validation": _load(cfg.val_paths, "data.val_path", cfg)}
        return IterableDatasetDict(splits) if cfg.streaming else DatasetDict(splits)
    return split_off_validation(train, cfg.val_fraction)


def _load(patterns: list[str], key: str, cfg: DataConfig) -> Dataset | IterableDataset:
    where = f"{key}={patterns[0] if len(patterns) == 1 else patterns!r}"
    files = [f for f in expand_files(patterns, key) if os.path.getsize(f) > 0]
    if not files:
        raise UserError(f"{where} holds no text (empty files); point it at some text")
    groups: dict[str, list[str]] = {}
    for file in files:
        groups.setdefault(BUILDERS.get(Path(file).suffix.lower(), "text"), []).append(file)
    parts = [_read(builder, group, cfg, where) for builder, group in groups.items()]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _read(builder: str, files: list[str], cfg: DataConfig, where: str) -> Dataset | IterableDataset:
    options: dict[str, object] = {"sample_by": cfg.sample_by} if builder == "text" else {}
    if cfg.streaming:
        options["streaming"] = True
    else:
        options["num_proc"] = cfg.num_proc
    try:  # a streamed dataset reads its files when text_column looks at its first rows
        return text_column(
            load_dataset(builder, data_files=files, split="train", **options),
            cfg.text_field,
            where,
        )
    except UserError:
        raise
    except Exception as err:  # datasets wraps parse/decode failures in several exception types
        if builder != "parquet":
            for file in files:
                if not _is_utf8(file):
                    raise UserError(f"{file} is not UTF-8 text; convert it or drop it") from None
        named = files[0] if len(files) == 1 else f"{files[0]} (or one of {len(files) - 1} more)"
        raise UserError(f"could not read {named} as {builder}: {reason(err)}") from None


def _is_utf8(file: str) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(file, "rb") as handle:
        try:
            while chunk := handle.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True
