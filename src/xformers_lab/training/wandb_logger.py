"""`logger=wandb`: a Weights & Biases logger named after the run's overrides and grouped by sweep,
tagged with the model and task, offline when there is no API key."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import WandbLogger
from omegaconf import OmegaConf

from xformers_lab.training.wandb_config import WandbConfig
from xformers_lab.typed_config import build
from xformers_lab.wandb_auth import has_api_key


class LabWandbLogger(WandbLogger):
    """Lightning's WandbLogger, carrying the settings of the samples table (see `wandb_samples`)."""

    def __init__(self, settings: WandbConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings


def wandb_logger(save_dir: str, **options: Any) -> LabWandbLogger:
    """Hydra target of `conf/logger/wandb.yaml`; files go to WANDB_DIR if set, else the run
    directory."""
    cfg = build(WandbConfig, options, "logger.wandb")
    name, group = run_name_and_group(Path(save_dir))
    save_dir = os.environ.get("WANDB_DIR") or save_dir
    return LabWandbLogger(
        settings=cfg,
        save_dir=save_dir,
        project=cfg.project,
        entity=cfg.entity,
        name=cfg.name or name,
        group=cfg.group or group,
        tags=list(dict.fromkeys([*auto_tags(), *cfg.tags])),
        log_model=cfg.log_checkpoints,
        mode=resolve_mode(cfg.mode, save_dir),
    )


def resolve_mode(mode: str, save_dir: str) -> str | None:
    """The wandb mode to run in (None: WANDB_MODE decides); `auto` without an API key is offline,
    announced with how to upload later."""
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE"):
        return None
    if has_api_key():
        return "online"
    _announce(
        "wandb: no API key (WANDB_API_KEY or `wandb login`), logging offline; upload later with: "
        f"wandb sync {Path(save_dir) / 'wandb' / 'offline-run-*'}"
    )
    return "offline"


def run_name_and_group(run_dir: Path) -> tuple[str, str | None]:
    """(name, group) from Hydra: in a multirun the sweep directory groups the jobs, each named by
    the values the sweep varies; a single run is named by its overrides."""
    if not HydraConfig.initialized():
        return run_dir.name, None
    hydra = HydraConfig.get()
    overrides = list(hydra.overrides.task)
    name = " ".join(overrides) or Path(hydra.runtime.output_dir).name
    if hydra.mode != RunMode.MULTIRUN:
        return name, None
    varying = _swept_keys(Path(hydra.sweep.dir))
    own = [o for o in overrides if o.partition("=")[0].lstrip("+~") in varying]
    return " ".join(own) or name, str(hydra.sweep.dir)


def auto_tags() -> list[str]:
    """The chosen model preset, task and experiment (Hydra's choices), when Hydra runs the job."""
    if not HydraConfig.initialized():
        return []
    choices = HydraConfig.get().runtime.choices
    return [str(choices[g]) for g in ("model", "task", "experiment") if choices.get(g)]


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"model": {"d_model": 64}}` -> `{"model.d_model": 64}` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _swept_keys(sweep_dir: Path) -> set[str]:
    """Keys the sweep's command line gives several values (read from its multirun.yaml)."""
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return set()
    task = OmegaConf.load(path).hydra.overrides.task
    parsed = OverridesParser.create().parse_overrides([str(o) for o in task])
    return {o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()}


@rank_zero_only
def _announce(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
