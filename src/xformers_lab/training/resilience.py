"""What lets a run survive failures, assembled for `train`: the checkpoint to resume from, the
callbacks (RNG states, periodic checkpoints, stop at a step boundary, non-finite policy) and the
exit of a stopped run."""

from __future__ import annotations

import shlex
import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint

from xformers_lab.training.nonfinite import NonFiniteGuard
from xformers_lab.training.resume import CHECKPOINT_DIR, resume_checkpoint
from xformers_lab.training.rng_states import RngStates
from xformers_lab.training.signals import StopAtStepBoundary, StopRequested
from xformers_lab.training.slurm import Preemption, requeued_resume
from xformers_lab.training.trainer_config import TrainerConfig

PERIODIC_KEEP = 2
"""`step=N.ckpt` files kept by `trainer.checkpoint_every_n_steps` (the newest ones)."""


class Resilience:
    """The run's resume point and failure handling, from the `trainer` config."""

    def __init__(self, cfg: TrainerConfig, run_dir: Path) -> None:
        self.run_dir = run_dir
        checkpoints = run_dir / CHECKPOINT_DIR
        self.resume_from = resume_checkpoint(requeued_resume(cfg.resume), run_dir)
        if self.resume_from is not None:  # continuing into a directory that has checkpoints
            warnings.filterwarnings("ignore", message=".*Checkpoint directory .* is not empty")
        self.preemption = Preemption.of_this_job()
        signals = (signal.SIGTERM, signal.SIGINT)
        if self.preemption is not None:
            signals = (*signals, self.preemption.signum)
        self.stop = StopAtStepBoundary(checkpoints / "last.ckpt", signals)
        guard = NonFiniteGuard(
            cfg.nonfinite, cfg.nonfinite_max_consecutive, cfg.nonfinite_lr_factor, checkpoints
        )
        self.callbacks: list[L.Callback] = [RngStates(), self.stop, guard]
        if cfg.checkpoint_every_n_steps is not None:
            self.callbacks.append(
                ModelCheckpoint(
                    dirpath=checkpoints,
                    filename="step={step}",
                    every_n_train_steps=cfg.checkpoint_every_n_steps,
                    monitor="step",
                    mode="max",
                    save_top_k=PERIODIC_KEEP,
                    save_last=True,
                    auto_insert_metric_name=False,
                    enable_version_counter=False,
                )
            )

    @contextmanager
    def stopping(self) -> Iterator[None]:
        """Turn a stop request (SIGTERM, SIGINT) into one message and the exit `128 + signal`;
        submitit's preemption signal into its requeue instead."""
        try:
            yield
        except StopRequested as stop:
            if self.preemption is not None and stop.signum == self.preemption.signum:
                self.preemption.hand_over(stop)
            print(
                f"{stop}: checkpoint {stop.checkpoint}; resume with: {self.resume_command()}",
                file=sys.stderr,
            )
            raise SystemExit(stop.exit_code) from None

    def resume_command(self) -> str:
        """The command line that continues this run in its own directory."""
        overrides = HydraConfig.get().overrides.task if HydraConfig.initialized() else []
        kept = [o for o in overrides if not o.startswith(("hydra.run.dir=", "trainer.resume="))]
        args = [*kept, f"hydra.run.dir={self.run_dir}", "trainer.resume=auto"]
        return shlex.join(["python", "-m", "xformers_lab.train", *args])
