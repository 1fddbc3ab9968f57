"""Stop at the next step boundary when asked (SIGTERM, SIGINT): save a checkpoint, end the run."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L


class StopRequested(Exception):
    """Raised at the step boundary after the checkpoint is written; `train` turns it into a
    message saying how to resume, and the exit code `128 + signal` (143 for SIGTERM, 130 for
    SIGINT, as a shell reports a process ended by that signal)."""

    def __init__(self, signum: int, step: int, checkpoint: Path) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")
        self.signum, self.step, self.checkpoint = signum, step, checkpoint

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopAtStepBoundary(L.Callback):
    """Turns a stop request into a checkpoint at the next optimizer-step boundary, then stops.

    `request(signum)` only sets a flag, so it is safe in a signal handler. At the end of the
    next optimizer step the full training state goes to `checkpoint` (atomically, through the
    trainer's checkpoint IO) and `StopRequested` ends `fit`. With several processes the request
    is agreed on by all ranks (one boolean all-reduce per step; Lightning does the same for its
    own SIGTERM handling), so every rank saves and stops at the same step.

    The handlers for `signals` are installed when training starts, replacing the ones Lightning
    registers (its SIGTERM handler would stop the loop without a checkpoint), and restored when
    training ends or fails. Under submitit, `signals` also holds its preemption signal (USR2),
    and `Resilience` hands the stop over to submitit's requeue (`training/slurm.py`). A second
    SIGINT while a stop is pending raises KeyboardInterrupt at once (Lightning's immediate
    shutdown).
    """

    def __init__(
        self, checkpoint: Path, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)
    ) -> None:
        self.checkpoint = checkpoint
        self.signals = signals
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}
        self._last_step = -1

    def request(self, signum: int, frame: FrameType | None = None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signum

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._last_step = trainer.global_step
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self.request)

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if trainer.global_step == self._last_step:  # inside gradient accumulation
            return
        self._last_step = trainer.global_step
        requested = self.requested is not None
        if trainer.world_size > 1:
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if not requested:
            return
        signum = self.requested or signal.SIGTERM  # another rank's request
        trainer.save_checkpoint(self.checkpoint)
        raise StopRequested(signum, trainer.global_step, self.checkpoint)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
