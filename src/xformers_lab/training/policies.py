"""Checks of the trainer keys that decide how a run survives failures (resume, periodic
checkpoints, non-finite steps, disk space)."""

from __future__ import annotations

from typing import Any

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
