"""The embedded default corpus: the running Python's standard library sources, offline anywhere."""

from __future__ import annotations

import math
import os
import sysconfig
import zlib
from collections.abc import Iterator
from pathlib import Path

from datasets import Dataset, DatasetDict

from xformers_lab.data.config import DataConfig
from xformers_lab.errors import UserError

EXCLUDED_DIRS = frozenset({"site-packages", "test", "tests"})


def load_pystdlib(cfg: DataConfig) -> DatasetDict:
    """One document per `.py` file of the standard library (tests and site-packages left out).

    Files are taken in a fixed hash order of their relative paths while they fit in
    `cfg.max_bytes`; a second hash picks `cfg.val_fraction` of them (at least one) for
    validation. The result depends only on the Python installation, not on the machine or the run.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    docs = dict(_pick(root, cfg.max_bytes))
    if len(docs) < 2:
        raise UserError(
            f"data.max_bytes={cfg.max_bytes} leaves {len(docs)} standard-library file(s), too few "
            "to split into train and validation; raise data.max_bytes"
        )
    by_val_hash = sorted(docs, key=lambda rel: _unit_hash("validation/" + rel))
    n_val = max(1, math.floor(len(docs) * cfg.val_fraction))
    val = set(by_val_hash[:n_val])
    return DatasetDict(
        train=Dataset.from_dict({"text": [t for rel, t in docs.items() if rel not in val]}),
        validation=Dataset.from_dict({"text": [t for rel, t in docs.items() if rel in val]}),
    )


def _pick(root: Path, max_bytes: int | None) -> Iterator[tuple[str, str]]:
    """(relative path, text) of UTF-8, non-blank files in hash order, within `max_bytes`."""
    total = 0
    for rel in sorted(_source_files(root), key=_unit_hash):
        path = root / rel
        size = path.stat().st_size
        if max_bytes is not None and total + size > max_bytes:
            continue
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue
        if text.strip():
            total += size
            yield rel, text


def _source_files(root: Path) -> Iterator[str]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in EXCLUDED_DIRS]
        for name in files:
            if name.endswith(".py"):
                yield (Path(folder) / name).relative_to(root).as_posix()


def _unit_hash(key: str) -> float:
    """A fixed pseudo-random number in [0, 1) for `key`, the same on every machine."""
    return zlib.crc32(key.encode("utf-8")) / 2**32
