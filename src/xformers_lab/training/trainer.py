"""The `trainer` config group as a typed config, and the Lightning Trainer built from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from xformers_lab.training.checkpoint_io import AtomicCheckpointIO
from xformers_lab.training.parallel import FSDP, build_strategy
from xformers_lab.training.progress import RichStepBar, progress_callback
from xformers_lab.training.slurm import cluster_plugins
from xformers_lab.training.trainer_checks import check_reliability

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true")


@dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    """Hardware and loop settings (keys named as in `lightning.Trainer`)."""

    accelerator: str = "auto"
    """cpu, gpu, or auto (a GPU when there is one)."""
    devices: int | str = 1
    """Devices per node (an int, or "auto")."""
    num_nodes: int = 1
    """Machines in the job."""
    strategy: str = "auto"
    """auto, ddp, fsdp (FSDP2: parameters, gradients and optimizer states sharded per block), or
    another Lightning strategy name."""
    precision: str = "32-true"
    """32-true, bf16-mixed, 16-mixed (GPU, with loss scaling) or bf16-true."""
    max_steps: int = 1000
    """Optimizer steps to train for; also the length of the LR schedule."""
    val_check_interval: int = 250
    """Validate every this many optimizer steps (and at the end)."""
    limit_val_batches: int | float = 25
    """Validation batches per evaluation (an int) or a fraction of the validation set."""
    log_every_n_steps: int = 25
    """Write train metrics to the loggers every this many steps."""
    gradient_clip_val: float | None = 1.0
    """Clip the global gradient norm to this value; null disables clipping."""
    accumulate_grad_batches: int = 1
    """Micro-batches per optimizer step."""
    deterministic: bool = False
    """Ask torch for deterministic kernels (slower; exact reproducibility)."""
    progress_bar: bool | None = None
    """Show a progress bar; null = only when attached to a terminal. Without a bar, a plain line
    every log_every_n_steps steps (for logs such as Slurm's)."""
    resume: str | None = None
    """null (fresh), auto (the newest good checkpoint of the run dir, else fresh) or a path."""
    checkpoint_every_n_steps: int | None = None
    """Also write `last.ckpt` (and keep the two newest `step=N.ckpt`) every this many steps."""
    nonfinite: str = "skip"
    """On a non-finite loss or gradient: stop, skip (the batch) or rollback (to the last checkpoint,
    with a lower learning rate)."""
    nonfinite_max_consecutive: int = 10
    """Stop after this many non-finite steps in a row (skip and rollback)."""
    nonfinite_lr_factor: float = 0.5
    """rollback: multiply the learning rate by this at each rollback."""
    min_free_gb: float = 1.0
    """Refuse to start when the run directory's disk has less free space (GB)."""
    compile: bool = False
    """`torch.compile` each transformer block (worth it on GPUs; slow to start on a CPU)."""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        for name in (
            "max_steps",
            "val_check_interval",
            "log_every_n_steps",
            "accumulate_grad_batches",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.limit_val_batches <= 0:
            raise ValueError(f"limit_val_batches must be positive, got {self.limit_val_batches}")
        if self.gradient_clip_val is not None and self.gradient_clip_val <= 0:
            raise ValueError("gradient_clip_val must be positive (or null to disable clipping)")
        check_reliability(self)
        if self.strategy == FSDP and self.nonfinite == "rollback":
            raise ValueError(
                "nonfinite=rollback cannot reload sharded checkpoints (strategy=fsdp); use skip"
            )

    def check_hardware(self) -> None:
        """Refuse settings this machine cannot run, before any work starts."""
        has_gpu = torch.cuda.is_available()
        if self.accelerator in ("gpu", "cuda") and not has_gpu:
            raise ValueError(
                "accelerator=gpu but no CUDA GPU is visible; use trainer=cpu (or, for DDP/FSDP "
                "over CPU processes, trainer.accelerator=cpu)"
            )
        on_cpu = self.accelerator == "cpu" or (self.accelerator == "auto" and not has_gpu)
        if on_cpu and self.precision == "16-mixed":
            raise ValueError("precision=16-mixed needs a GPU; on CPU use 32-true or bf16-mixed")
        if self.strategy == FSDP and self.precision == "16-mixed":
            raise ValueError("strategy=fsdp does not support precision=16-mixed; use bf16-mixed")


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
