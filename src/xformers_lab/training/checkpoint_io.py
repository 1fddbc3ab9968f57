"""Crash-safe checkpoint writes: a checkpoint file is either the old one or the complete new one."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Any

import torch
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """`TorchCheckpointIO` whose local saves go through a temporary file and `os.replace`.

    Lightning opens the target itself and writes into it, so a run killed mid-save (preemption,
    OOM, a full disk) leaves a truncated `last.ckpt` that the next `--resume` fails on. Here the
    bytes go to a hidden temporary file beside the target, are fsynced, then renamed over it in
    one step; the directory is fsynced so the rename survives a power loss too. Remote paths
    (`s3://...`) keep Lightning's own transactional write.
    """

    def save_checkpoint(
        self,
        checkpoint: dict[str, Any],
        path: str | os.PathLike[str],
        storage_options: Any | None = None,
    ) -> None:
        fs, local_path = url_to_fs(str(path))
        if storage_options is not None or not isinstance(fs, LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(local_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "xb") as f:  # not mkstemp: keep the umask's permissions, not 0600
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist a rename in `directory` (POSIX: a rename is durable only once its dir is synced)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
