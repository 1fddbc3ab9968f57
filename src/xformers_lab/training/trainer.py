"""The Lightning Trainer built from the `trainer` config group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L

from xformers_lab.training.checkpoint_io import AtomicCheckpointIO
from xformers_lab.training.parallel import build_strategy
from xformers_lab.training.progress import RichStepBar, progress_callback
from xformers_lab.training.slurm import cluster_plugins
from xformers_lab.training.trainer_config import TrainerConfig


def build_trainer(
    cfg: TrainerConfig,
    run_dir: Path,
    *,
    loggers: list[Any],
    callbacks: list[L.Callback],
) -> L.Trainer:
    """A Trainer that counts in optimizer steps and writes checkpoints atomically."""
    progress = progress_callback(cfg.progress_bar, cfg.log_every_n_steps)
    return L.Trainer(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=build_strategy(cfg.strategy),
        precision=cfg.precision,
        max_steps=cfg.max_steps,
        max_epochs=-1,
        val_check_interval=cfg.val_check_interval * cfg.accumulate_grad_batches,
        check_val_every_n_epoch=None,
        limit_val_batches=cfg.limit_val_batches,
        log_every_n_steps=cfg.log_every_n_steps,
        gradient_clip_val=cfg.gradient_clip_val,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        deterministic=cfg.deterministic,
        enable_progress_bar=isinstance(progress, RichStepBar),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=run_dir,
        logger=loggers,
        callbacks=[*callbacks, progress],
        plugins=[AtomicCheckpointIO(), *cluster_plugins()],
    )
