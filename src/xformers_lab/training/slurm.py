"""Running as a Slurm job submitted by submitit (`hydra/launcher=slurm`): preemption hands over to
submitit's requeue once our checkpoint is written, a requeued job resumes by itself, and Lightning
takes ranks from Slurm without its own requeue."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any, NoReturn

from lightning.pytorch.plugins.environments import ClusterEnvironment, SLURMEnvironment

from xformers_lab.training.signals import StopRequested

log = logging.getLogger(__name__)

Handler = Callable[[int, FrameType | None], Any]


@dataclass(frozen=True)
class Preemption:
    """Submitit's preemption signal in this job and the handler submitit installed for it.

    Submitit asks Slurm for USR2 (`SUBMITIT_PREEMPT_SIGNAL` changes it) `signal_delay_s` before
    the time limit, and a preempted job gets it as well. Its handler, installed before the task
    starts, pickles the job again (Hydra's launcher resubmits the same overrides, so the job keeps
    its run directory), runs `scontrol requeue` and exits, on global rank 0; it returns at once
    on the other ranks. While training runs, `StopAtStepBoundary` takes the signal instead, so
    the checkpoint is written at a step boundary first; then `hand_over` calls submitit's handler.
    """

    signum: int
    handler: Handler

    @classmethod
    def of_this_job(cls) -> Preemption | None:
        """The preemption signal and submitit's handler, or None outside a submitit job."""
        if "SUBMITIT_EXECUTOR" not in os.environ:
            return None
        from submitit import JobEnvironment
        from submitit.core.job_environment import SignalHandler

        signum = signal.Signals["SIG" + JobEnvironment.USR_SIG]
        handler = signal.getsignal(signum)
        if not isinstance(getattr(handler, "__self__", None), SignalHandler):
            return None  # not the job's process (e.g. a sweep launched from inside a job)
        return cls(signum, handler)  # type: ignore[arg-type]

    def hand_over(self, stop: StopRequested) -> NoReturn:
        """Let submitit requeue the job (rank 0 exits there); the other ranks end quietly."""
        print(f"{stop}: checkpoint {stop.checkpoint}; submitit requeues the job", file=sys.stderr)
        self.handler(self.signum, None)
        raise SystemExit(0)


def restart_count() -> int:
    """How many times Slurm has requeued this job (0 on the first run, and outside Slurm)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


def requeued_resume(resume: str | None) -> str | None:
    """`trainer.resume` for this run: a requeued job continues from its own checkpoints, so
    there `null` counts as `auto` (an explicit choice is kept)."""
    restarts = restart_count()
    if resume is None and restarts >= 1:
        log.info("Slurm requeued this job (SLURM_RESTART_COUNT=%d): trainer.resume=auto", restarts)
        return "auto"
    return resume


def cluster_plugins() -> list[ClusterEnvironment]:
    """Slurm's ranks and world size for Lightning, without its auto-requeue: on SIGUSR1 that
    would save a different checkpoint (`hpc_ckpt`) and requeue the job a second way."""
    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []
