"""The `trainer` config group as a typed config, with the checks of its keys beyond their types:
how a run survives failures (resume, periodic checkpoints, non-finite steps, disk space), and
whether this machine can launch it. Lightning is imported only to name an unusual strategy, so
a mistake on the command line costs no Lightning import."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

NONFINITE_POLICIES = ("stop", "skip", "rollback")
FSDP = "fsdp"
"""`trainer.strategy=fsdp`: FSDP2 (`fully_shard`), not Lightning's legacy FSDP1 strategy."""
COMMON_STRATEGIES = ("auto", "ddp", FSDP, "ddp_spawn", "single_device")
"""Strategies accepted without asking Lightning's registry."""
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
    threads: int | None = None
    """Intra-op CPU threads of each process; null: torch's default (every core) for one
    process, and cores / local ranks for several CPU ranks, so they share the cores instead of
    oversubscribing them (OMP_NUM_THREADS, when set, wins)."""

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
        if self.threads is not None and self.threads <= 0:
            raise ValueError(f"threads must be positive (or null), got {self.threads}")
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
    if cfg.strategy in COMMON_STRATEGIES:
        strategies = list(COMMON_STRATEGIES)
    else:
        from lightning.pytorch.strategies import StrategyRegistry

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


def intra_op_threads(cfg: TrainerConfig, env: Mapping[str, str], cores: int) -> int | None:
    """The CPU threads each process of this run should use, or None to leave torch's choice:
    `cfg.threads` when set; else, for several local CPU ranks, an equal share of the `cores`
    (two ranks on two cores each taking both runs them about 20 times slower), unless
    OMP_NUM_THREADS in `env` says otherwise."""
    if cfg.threads is not None:
        return cfg.threads
    ranks = cfg.devices if isinstance(cfg.devices, int) else 1
    on_cpu = cfg.accelerator == "cpu" or (
        cfg.accelerator == "auto" and not torch.cuda.is_available()
    )
    if "OMP_NUM_THREADS" in env or not on_cpu or ranks <= 1:
        return None
    return max(1, cores // ranks)
