"""Before Hydra creates anything: is the run directory's disk writable, with room to spare?"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from xformers_lab.cli import HYDRA_FLAGS
from xformers_lab.errors import UserError
from xformers_lab.paths import conf_dir

GB = 1024**3


def check_output_dir(config_name: str, argv: list[str]) -> None:
    """Check the directory this command line would write to (the sweep dir with `-m`): its
    nearest existing ancestor must be a writable directory with at least `trainer.min_free_gb`
    free. Skipped for Hydra's other flags (--cfg, --help, ...), which write nothing."""
    if any(arg.startswith("-") and arg not in HYDRA_FLAGS for arg in argv):
        return
    overrides = [arg for arg in argv if arg not in HYDRA_FLAGS]
    multirun = any(arg in HYDRA_FLAGS for arg in argv)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config_name, overrides=_first_values(overrides), return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()
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


def _first_values(overrides: list[str]) -> list[str]:
    """A sweep's first value of each key (`a=1,2` -> `a=1`): enough to know the output dir."""
    firsts = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_sweep_override() and override.is_discrete_sweep():
            value = next(iter(override.sweep_string_iterator()))
            firsts.append(f"{override.get_key_element()}={value}")
        else:
            firsts.append(override.input_line)
    return firsts
