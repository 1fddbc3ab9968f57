"""`train/tokens_seen` and `train/tokens_per_sec` in the logs, at the loggers' cadence."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class TokenMetrics(L.Callback):
    """Logs the tokens trained on so far and the rate since the previous logged step.

    Tokens come from batch shapes (no device sync). The rate covers the training time between two
    logged steps: time spent in validation (and the checkpointing after it) is left out, so it
    reads as training throughput.
    """

    def __init__(self) -> None:
        self.tokens_seen = 0
        self._mark: tuple[float, int] | None = None  # (time, tokens) at the previous logged step
        self._val_started: float | None = None
        self._last_step = -1

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._mark = (time.perf_counter(), self.tokens_seen)
        self._last_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        self.tokens_seen += module.batch_tokens(batch) * trainer.world_size
        step = trainer.global_step
        if step % trainer.log_every_n_steps != 0 or self._mark is None or step == self._last_step:
            return  # with gradient accumulation, several micro-batches end at the same step
        self._last_step = step
        now = time.perf_counter()
        then, tokens_then = self._mark
        self._mark = (now, self.tokens_seen)
        module.log("train/tokens_seen", float(self.tokens_seen), on_step=True, on_epoch=False)
        if now > then and self.tokens_seen > tokens_then:
            rate = (self.tokens_seen - tokens_then) / (now - then)
            module.log("train/tokens_per_sec", rate, on_step=True, on_epoch=False)

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._val_started = time.perf_counter()

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        """Back to training after a validation: its time (checkpointing included) is skipped."""
        if self._val_started is None or self._mark is None:
            return
        spent = time.perf_counter() - self._val_started
        self._mark = (self._mark[0] + spent, self._mark[1])
        self._val_started = None

    def state_dict(self) -> dict[str, Any]:
        return {"tokens_seen": self.tokens_seen}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.tokens_seen = int(state_dict.get("tokens_seen", 0))
