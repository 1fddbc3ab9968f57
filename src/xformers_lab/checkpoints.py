"""The checkpoint format: one versioned payload beside the weights, read and written here only.

A checkpoint is self-contained. Beside its weights (`state_dict`, keyed as the objective's
modules: `model.*`, then any head such as `classifier.*`) it holds, under `PAYLOAD_KEY`, what
rebuilds them without the corpus or the config tree: the objective, the model config, the
tokenizer, the objective's head config, adapters, and the resolved run config. Training
(Lightning) writes whole training checkpoints (optimizer, loops, callbacks too) and `attach`es
the payload; conversions `write` weights-only ones; `load()`, `init_from`, helper models,
`convert` and resume `read` them. Reading never runs code (`weights_only=True`), reads a file
once per process, and says in one line what is wrong with a file it cannot use.

Formats: 1 (the first release: a classifier's head config under "classifier") and 2 (adds
`head` and `adapters`). Format 1 files are upgraded as they are read.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import uuid
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from xformers_lab.core import TransformerConfig
from xformers_lab.errors import UserError

FORMAT = 2
"""The format this release writes."""
PAYLOAD_KEY = "xformers_lab"
"""Checkpoint entry holding the `Payload`."""
WEIGHTS_KEY = "state_dict"
"""Checkpoint entry holding the weights (Lightning's name for them)."""
LOAD_ERRORS = (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile, pickle.PickleError)
_CACHED_FILES = 4


@dataclass(frozen=True, kw_only=True)
class Payload:
    """Everything besides the weights that rebuilds a checkpoint's model, head and tokenizer."""

    task: str
    """The objective that wrote it (`task.name`): its module rebuilds the head."""
    model_config: TransformerConfig
    tokenizer: dict[str, Any]
    """The tokenizer's own `state_dict()`."""
    head: dict[str, Any] = field(default_factory=dict)
    """The objective's `head_config()`: what its task head needs beyond the model config
    (a classifier's classes and label names, ...)."""
    adapters: dict[str, Any] = field(default_factory=dict)
    """Adapters (LoRA ...) applied to the model, by the transform that wrote them."""
    config: dict[str, Any] = field(default_factory=dict)
    """The resolved run config, for provenance."""
    format: int = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "task": self.task,
            "model_config": self.model_config.to_dict(),
            "tokenizer": self.tokenizer,
            "head": self.head,
            "adapters": self.adapters,
            "config": self.config,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: Path) -> Payload:
        """The payload of any format this release reads, upgraded to the current one."""
        version = raw.get("format", 1)  # hand-made files of the first release may omit it
        if not isinstance(version, int) or not 1 <= version <= FORMAT:
            raise UserError(
                f"checkpoint {path} has format {version!r}; this xformers_lab reads formats 1 to "
                f"{FORMAT} (a newer release wrote it: upgrade xformers_lab)"
            )
        head = raw.get("head", raw.get("classifier", {}))  # format 1 kept only a classifier's
        return cls(
            task=raw["task"],
            model_config=TransformerConfig(**raw["model_config"]),
            tokenizer=raw["tokenizer"],
            head=dict(head or {}),
            adapters=dict(raw.get("adapters") or {}),
            config=dict(raw.get("config") or {}),
        )


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file as read: its payload and its raw contents (treat as read-only)."""

    path: Path
    payload: Payload
    contents: dict[str, Any]

    @property
    def weights(self) -> dict[str, Tensor]:
        """The objective's weights: `model.*` and its head's."""
        return self.contents[WEIGHTS_KEY]


def read(path: str | Path) -> Checkpoint:
    """The checkpoint at `path`; a sharded directory, a missing, corrupt or foreign file is a
    `UserError` naming it."""
    path = Path(path)
    if path.is_dir():
        raise UserError(
            f"checkpoint {path} is sharded (trainer=fsdp); make one file of it with: "
            f"python -m xformers_lab.convert consolidate {path} <out.ckpt>"
        )
    contents = read_file(path)
    if not isinstance(contents, dict) or PAYLOAD_KEY not in contents:
        raise UserError(f"{path} is not an xformers_lab checkpoint (no model config inside)")
    return Checkpoint(path, Payload.from_dict(contents[PAYLOAD_KEY], path), contents)


def read_file(path: Path, cache: bool = True) -> Any:
    """`torch.load(path)` without running code, memory-mapped; every failure is one
    `UserError`. With `cache`, kept while the file is unchanged, so a run reads an `init_from`
    checkpoint once (training checkpoints, which a run replaces, are read uncached)."""
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    if not cache:
        return _load(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    contents = _load(path)
    _cache[key] = contents
    while len(_cache) > _CACHED_FILES:
        _cache.popitem(last=False)
    return contents


def attach(checkpoint: dict[str, Any], payload: Payload) -> None:
    """Add `payload` to a checkpoint dict about to be saved (Lightning's `on_save_checkpoint`)."""
    checkpoint[PAYLOAD_KEY] = payload.to_dict()


def write(path: str | Path, weights: dict[str, Tensor], payload: Payload) -> Path:
    """Write a weights-only checkpoint atomically: `read` and `load()` take it like a trained
    one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        torch.save({WEIGHTS_KEY: weights, PAYLOAD_KEY: payload.to_dict()}, tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


_cache: OrderedDict[tuple[str, int, int], Any] = OrderedDict()


def _load(path: Path) -> Any:
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:  # files in torch's legacy format cannot be memory-mapped
            if "mmap" not in str(err):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # weights_only met an object that would run code
        found = re.search(r"GLOBAL (\S+)", str(err))
        what = f" ({found.group(1)})" if found else ""
        raise UserError(
            f"checkpoint {path} is refused: loading it would run code{what}; checkpoints may "
            "hold only tensors and plain data"
        ) from None
    except LOAD_ERRORS as err:
        text = str(err).strip()
        first = text.splitlines()[0][:200] if text else type(err).__name__
        raise UserError(f"checkpoint {path} is corrupt or truncated ({first})") from None
