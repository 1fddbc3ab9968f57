"""Where the data comes from, checked at config time without reading it (and without importing
`datasets`): files and globs exist, and examples come from sources that hold fields."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from pathlib import Path

from xformers_lab.data.config import DataConfig
from xformers_lab.errors import UserError

BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
"""`datasets` builder by file extension; any other file is read as plain text."""
EXAMPLE_SOURCES = ("text", "hf")
"""`data.source`s that hold examples with named fields."""
KINDS = ("text", "words", "messages", "any")
"""What a role holds: a string, a list of strings (words of a tagged sentence), a chat (a list
of `{role, content}` strings), or anything (checked by the objective). A kind ending in `?`
marks an optional role: its column may be absent (the objective checks which came), but the
examples need at least one of the roles."""
OPTIONAL = "?"
Fields = Mapping[str, str]
"""role -> kind (one of `KINDS`, optionally marked `OPTIONAL`), as an objective declares its
examples' fields."""


def kind_of(kind: str) -> str:
    """The kind without its optional mark."""
    return kind.removesuffix(OPTIONAL)


def check_files(cfg: DataConfig) -> None:
    """Fail at config time, before a run directory exists, if a named file or glob is missing."""
    if cfg.source != "text":
        return
    expand_files(cfg.paths, "data.path")
    if cfg.val_paths:
        expand_files(cfg.val_paths, "data.val_path")


def check_examples(cfg: DataConfig, roles: Fields) -> None:
    """Config time: examples come from structured files or a `datasets` dataset."""
    unknown = sorted({kind_of(kind) for kind in roles.values()} - set(KINDS))
    if unknown:
        raise ValueError(f"objective fields of unknown kinds {unknown}; kinds are {KINDS}")
    columns = ", ".join(f"data.{role}_field={cfg.column(role)!r}" for role in roles)
    if cfg.source not in EXAMPLE_SOURCES:
        raise UserError(
            f"examples cannot come from data={cfg.source}; use data=text data.path=<csv|jsonl|"
            f"json|parquet> (columns {columns}) or data=hf data.name=..."
        )
    for key in ("streaming", "document_mask"):
        if getattr(cfg, key):
            raise UserError(f"data.{key} is for packed text corpora, not examples")
    if cfg.source != "text":
        return
    for key, patterns in (("data.path", cfg.paths), ("data.val_path", cfg.val_paths)):
        for file in expand_files(patterns, key) if patterns else []:
            if Path(file).suffix.lower() not in BUILDERS:
                raise UserError(
                    f"{key}: {file} is not csv, jsonl/json or parquet; examples need columns "
                    f"{columns}"
                )


def expand_files(patterns: list[str], key: str) -> list[str]:
    """The files `patterns` name, in order, each once; a pattern naming nothing is an error."""
    files: dict[str, None] = {}
    for pattern in patterns:
        path = os.path.expanduser(pattern)
        if glob.has_magic(path):
            matches = [m for m in sorted(glob.glob(path, recursive=True)) if os.path.isfile(m)]
            if not matches:
                raise UserError(f"{key}={pattern!r} matches no files; check the pattern")
        elif os.path.isdir(path):
            raise UserError(f"{key}={pattern!r} is a folder; name files or a glob like dir/*.txt")
        elif not os.path.isfile(path):
            raise UserError(f"{key}={pattern!r} does not exist; check the path")
        else:
            matches = [path]
        files.update(dict.fromkeys(matches))
    return list(files)
