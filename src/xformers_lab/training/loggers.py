"""The loggers under `cfg.logger` (csv, wandb or both: `logger=[csv,wandb]`), writing into the
run directory, with the callbacks they bring (config-time checks: `wandb_config.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from xformers_lab.training.wandb_logger import flatten
from xformers_lab.training.wandb_samples import sample_callbacks


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    """Every node under `cfg.logger`, instantiated with `save_dir=run_dir`; a W&B run gets the
    resolved config, flattened (`model.d_model`, `optim.lr`, ...)."""
    loggers = [
        instantiate(node, save_dir=str(run_dir)) for node in (cfg.get("logger") or {}).values()
    ]
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        flat = flatten(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
        for logger in loggers:
            if isinstance(logger, WandbLogger):
                logger.log_hyperparams(flat)
    return loggers


def logger_callbacks(loggers: list[Logger], generative: bool) -> list[L.Callback]:
    """Callbacks the loggers ask for (the W&B samples table of objectives that write text)."""
    return sample_callbacks(loggers, generative)


def finish_loggers(loggers: list[Logger], summary: dict[str, Any]) -> None:
    """Close each W&B run with summary.json's figures in its summary (global rank zero), so the
    next job of a multirun in this process starts a run of its own."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update({k: v for k, v in summary.items() if v is not None})
            logger.experiment.finish()
