"""Checks of trainer keys beyond their types: how a run survives failures (resume, periodic
checkpoints, non-finite steps, disk space), and whether this machine can launch it."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.strategies import StrategyRegistry

NONFINITE_POLICIES = ("stop", "skip", "rollback")


def check_reliability(cfg: Any) -> None:
    """Raise ValueError on an invalid value of the reliability keys of a `TrainerConfig`."""
    if cfg.resume is not None and not cfg.resume:
        raise ValueError("resume must be auto, a checkpoint path, or null")
    every = cfg.checkpoint_every_n_steps
    if every is not None and every <= 0:
        raise ValueError(f"checkpoint_every_n_steps must be positive (or null), got {every}")
    if cfg.nonfinite not in NONFINITE_POLICIES:
        raise ValueError(
            f"nonfinite must be one of {', '.join(NONFINITE_POLICIES)}, got {cfg.nonfinite!r}"
        )
    if cfg.nonfinite_max_consecutive <= 0:
        raise ValueError(
            f"nonfinite_max_consecutive must be positive, got {cfg.nonfinite_max_consecutive}"
        )
    if not 0.0 < cfg.nonfinite_lr_factor < 1.0:
        raise ValueError(f"nonfinite_lr_factor must be in (0, 1), got {cfg.nonfinite_lr_factor}")
    if cfg.min_free_gb < 0:
        raise ValueError(f"min_free_gb must be >= 0, got {cfg.min_free_gb}")


def check_launch(cfg: Any) -> None:
    """Raise ValueError on a strategy, device or node count this machine cannot launch."""
    strategies = ["auto", *StrategyRegistry.available_strategies()]
    if cfg.strategy not in strategies:
        raise ValueError(
            f"unknown strategy {cfg.strategy!r}; choose one of: {', '.join(strategies[:8])}, ..."
        )
    if cfg.num_nodes <= 0:
        raise ValueError(f"num_nodes must be positive, got {cfg.num_nodes}")
    devices = cfg.devices
    if isinstance(devices, str) and devices != "auto":
        raise ValueError(f"devices must be a positive int or auto, got {devices!r}")
    if isinstance(devices, int) and devices <= 0:
        raise ValueError(f"devices must be positive (or auto), got {devices}")
    gpus = torch.cuda.device_count()
    on_gpu = cfg.accelerator in ("gpu", "cuda") or (cfg.accelerator == "auto" and gpus > 0)
    if on_gpu and isinstance(devices, int) and devices > gpus:
        raise ValueError(
            f"devices={devices} but this machine has {gpus} GPU(s); lower trainer.devices"
        )
