"""Run statistics: tokens seen, steady-state throughput, and the history of validations."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import lightning as L
import torch


class Mark(NamedTuple):
    """A point of the run: host time, tokens trained so far, validation seconds so far."""

    time: float
    tokens: int
    val_seconds: float


def tokens_per_second(start: Mark, end: Mark) -> float | None:
    """Training tokens per second between two marks, validation time excluded."""
    seconds = (end.time - start.time) - (end.val_seconds - start.val_seconds)
    tokens = end.tokens - start.tokens
    return tokens / seconds if seconds > 0 and tokens > 0 else None


class RunStats(L.Callback):
    """Counts tokens from batch shapes (no host sync) and times training.

    Throughput is steady state: the clock starts after `skip_steps` optimizer steps (compile,
    allocator and cache warm-up) and validation time is subtracted.
    """

    def __init__(self, skip_steps: int = 10) -> None:
        self.skip_steps = skip_steps
        self.tokens_seen = 0
        self.validations: list[dict[str, float]] = []
        self._val_seconds = 0.0
        self._val_started: float | None = None
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

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._window_end = self.mark()

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            _sync()
            self._val_started = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._val_started is None:
            return
        _sync()
        self._val_seconds += time.perf_counter() - self._val_started
        self._val_started = None
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
