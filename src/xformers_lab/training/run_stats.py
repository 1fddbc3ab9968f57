"""Run statistics: tokens seen, steady-state throughput, and the history of validations."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import lightning as L
import torch


class Mark(NamedTuple):
    """A point of the run: host time, tokens trained so far, seconds paused so far."""

    time: float
    tokens: int
    val_seconds: float


def tokens_per_second(start: Mark, end: Mark) -> float | None:
    """Training tokens per second between two marks, paused time (validation) excluded."""
    seconds = (end.time - start.time) - (end.val_seconds - start.val_seconds)
    tokens = end.tokens - start.tokens
    return tokens / seconds if seconds > 0 and tokens > 0 else None


class RunStats(L.Callback):
    """Counts tokens from batch shapes (no host sync) and times training.

    Throughput is steady state: the clock starts after `skip_steps` optimizer steps (compile,
    allocator and cache warm-up), and each validation pauses it until the next training batch
    starts, so the checkpoint a validation triggers is not counted either (ModelCheckpoint
    saves after this callback's `on_validation_end`; a short benchmark run otherwise lost
    several percent to writing its final checkpoint).
    """

    def __init__(self, skip_steps: int = 10) -> None:
        self.skip_steps = skip_steps
        self.tokens_seen = 0
        self.validations: list[dict[str, float]] = []
        self._val_seconds = 0.0
        self._paused_at: float | None = None
        self._window_start: Mark | None = None
        self._window_end: Mark | None = None

    def state_dict(self) -> dict[str, Any]:
        """Tokens and validations so far travel in checkpoints: a resumed run's summary counts
        the whole run."""
        return {"tokens_seen": self.tokens_seen, "validations": self.validations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.tokens_seen = state_dict["tokens_seen"]
        self.validations = list(state_dict["validations"])

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        self.tokens_seen += module.batch_tokens(batch) * trainer.world_size
        skip = min(self.skip_steps, trainer.max_steps // 5)
        if self._window_start is None and trainer.global_step >= skip:
            self._window_start = self.mark()

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        self._resume()

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._resume()
        self._window_end = self.mark()

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self._paused_at is None:
            _sync()
            self._paused_at = time.perf_counter()

    def _resume(self) -> None:
        """End a pause: only after a validation, so steps read no clock."""
        if self._paused_at is not None:
            _sync()
            self._val_seconds += time.perf_counter() - self._paused_at
            self._paused_at = None

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        self.validations.append({"step": trainer.global_step, **metrics})

    def tokens_per_second(self) -> float | None:
        """Training tokens per second between the end of warm-up and the end of training."""
        if self._window_start is None or self._window_end is None:
            return None
        return tokens_per_second(self._window_start, self._window_end)

    def last_validated_step(self) -> int | None:
        return self.validations[-1]["step"] if self.validations else None

    def mark(self) -> Mark:
        """Now, after the device has finished its queued work (a sync on GPUs: call it at
        logging steps only)."""
        _sync()
        return Mark(time.perf_counter(), self.tokens_seen, self._val_seconds)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
