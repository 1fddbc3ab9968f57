"""Before Hydra creates anything: is the run directory's disk writable, with room to spare?"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from omegaconf import DictConfig

from xformers_lab.errors import UserError

GB = 1024**3


def check_output_dir(cfg: DictConfig, multirun: bool) -> None:
    """Check the directory a run composed as `cfg` (with its `hydra` node) would write to (the
    sweep dir with `-m`): its nearest existing ancestor must be a writable directory with at
    least `trainer.min_free_gb` free."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    directory = Path(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir)
    check_writable(directory, float(cfg.trainer.min_free_gb), key)


def check_writable(directory: Path, min_free_gb: float, key: str = "hydra.run.dir") -> None:
    """Raise `UserError` unless `directory` can be created (or written) with `min_free_gb` GB
    free on its disk; the message suggests setting `key` instead."""
    existing = directory.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(
            f"cannot create the run directory {directory}: {existing} is a file; "
            f"choose another with {key}=..."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"cannot write the run directory {directory}: {existing} is not writable; "
            f"choose another with {key}=..."
        )
    free = shutil.disk_usage(existing).free / GB
    if free < min_free_gb:
        raise UserError(
            f"only {free:.2f} GB free on the disk of {existing} for the run directory, less than "
            f"trainer.min_free_gb={min_free_gb:g}; free some space or choose another disk with "
            f"{key}=..."
        )
