"""`train/tokens_seen` and `train/tokens_per_sec` in the logs, beside the train loss."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import lightning as L

from xformers_lab.training.log_steps import written_this_step


class TokenMetrics(L.Callback):
    """Logs the tokens trained on so far and the rate over the last `log_every_n_steps` steps.

    Both are logged on the steps the loggers write, like the loss (Lightning picks them; after a
    resume they are not multiples of log_every_n_steps). Tokens come from batch shapes (no device
    sync); time spent in validation (and the checkpointing after it) is left out of the rate.
    """

    def __init__(self) -> None:
        self.tokens_seen = 0
        self._marks: deque[tuple[float, int]] = deque()  # (time, tokens) after recent steps
        self._last_step = -1
        self._val_started: float | None = None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._marks = deque(
            [(time.perf_counter(), self.tokens_seen)], maxlen=trainer.log_every_n_steps + 1
        )
        self._last_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        self.tokens_seen += module.batch_tokens(batch) * trainer.world_size
        if trainer.global_step == self._last_step:
            return  # mid-accumulation: the optimizer step has not ended yet
        self._last_step = trainer.global_step
        self._marks.append((time.perf_counter(), self.tokens_seen))
        if not written_this_step(trainer):
            return
        module.log("train/tokens_seen", float(self.tokens_seen), on_step=True, on_epoch=False)
        (then, tokens_then), (now, tokens_now) = self._marks[0], self._marks[-1]
        if now > then and tokens_now > tokens_then:
            rate = (tokens_now - tokens_then) / (now - then)
            module.log("train/tokens_per_sec", rate, on_step=True, on_epoch=False)

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._val_started = time.perf_counter()

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        """Back to training after a validation: its time (checkpointing included) is skipped."""
        if self._val_started is None:
            return
        spent = time.perf_counter() - self._val_started
        self._marks = deque(((t + spent, n) for t, n in self._marks), maxlen=self._marks.maxlen)
        self._val_started = None

    def state_dict(self) -> dict[str, Any]:
        return {"tokens_seen": self.tokens_seen}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.tokens_seen = int(state_dict.get("tokens_seen", 0))
