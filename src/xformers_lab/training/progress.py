"""Training progress in optimizer steps: a rich bar on a terminal, periodic plain lines in logs.

Both show the step out of `max_steps`, the train loss, the learning rate, tokens/s (whatever
logs `train/tokens_per_sec`), the elapsed time and an estimate of the time left.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@dataclass(frozen=True)
class Snapshot:
    """Where training stands, read from the trainer's latest metrics."""

    step: int
    max_steps: int
    loss: float | None
    lr: float | None
    tokens_per_sec: float | None
    elapsed: float
    """Seconds since training (re)started."""
    eta: float | None
    """Seconds left at the average pace since training (re)started, validation included."""

    def metrics_text(self) -> str:
        """`loss 2.3456  lr 3.00e-04  12,345 tok/s`, leaving out what is not known yet."""
        parts = []
        if self.loss is not None:
            parts.append(f"loss {self.loss:.4f}")
        if self.lr is not None:
            parts.append(f"lr {self.lr:.2e}")
        if self.tokens_per_sec is not None:
            parts.append(f"{self.tokens_per_sec:,.0f} tok/s")
        return "  ".join(parts)

    def line(self) -> str:
        """One plain log line: `step 250/1000 (25%)  loss ...  elapsed 0:01:02  eta 0:03:06`."""
        percent = 100 * self.step / self.max_steps
        eta = "?" if self.eta is None else _clock(self.eta)
        metrics = self.metrics_text()
        return (
            f"step {self.step}/{self.max_steps} ({percent:.0f}%)  "
            + (f"{metrics}  " if metrics else "")
            + f"elapsed {_clock(self.elapsed)}  eta {eta}"
        )


class StepClock:
    """Elapsed time and ETA from the steps done since training (re)started."""

    def __init__(self) -> None:
        self._start: tuple[float, int] | None = None

    def start(self, step: int) -> None:
        self._start = (time.perf_counter(), step)

    def snapshot(self, trainer: L.Trainer) -> Snapshot:
        started, first_step = self._start or (time.perf_counter(), trainer.global_step)
        elapsed = time.perf_counter() - started
        done, left = trainer.global_step - first_step, trainer.max_steps - trainer.global_step
        metrics = trainer.callback_metrics
        return Snapshot(
            step=trainer.global_step,
            max_steps=trainer.max_steps,
            loss=_value(metrics.get("train/loss")),
            lr=_value(metrics.get("train/lr")),
            tokens_per_sec=_value(metrics.get("train/tokens_per_sec")),
            elapsed=elapsed,
            eta=elapsed / done * left if done > 0 else None,
        )


class ProgressLines(L.Callback):
    """Plain lines for logs that are not a terminal (Slurm): one every `every_n_steps` steps and
    at the last, and one per validation during training."""

    def __init__(self, every_n_steps: int) -> None:
        self.every_n_steps = every_n_steps
        self.clock = StepClock()
        self._last_step = -1

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.clock.start(trainer.global_step)
        self._last_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        step = trainer.global_step
        due = step % self.every_n_steps == 0 or step == trainer.max_steps
        if trainer.is_global_zero and due and step != self._last_step:  # once per optimizer step
            self._last_step = step
            self._print(self.clock.snapshot(trainer).line())

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero and trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._print(f"validation at step {trainer.global_step}: {_val_text(trainer)}")

    def _print(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


class RichStepBar(ProgressBar):
    """A rich progress bar over optimizer steps (not epochs: runs are sized in steps), with the
    metrics beside it, and a transient bar while validating."""

    def __init__(self, refresh_every_n_steps: int = 10, console: Console | None = None) -> None:
        super().__init__()
        self.refresh_every_n_steps = refresh_every_n_steps
        self.console = console
        self.clock = StepClock()
        self._enabled = True
        self._progress: Progress | None = None
        self._train: TaskID | None = None
        self._val: TaskID | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.clock.start(trainer.global_step)
        if not self._enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console or Console(stderr=True),
        )
        self._progress.start()
        self._train = self._progress.add_task(
            "train", total=trainer.max_steps, completed=trainer.global_step, metrics=""
        )

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if self._progress is None or self._train is None:
            return
        update: dict[str, Any] = {"completed": trainer.global_step}
        step = trainer.global_step
        if step % self.refresh_every_n_steps == 0 or step == trainer.max_steps:
            update["metrics"] = self.clock.snapshot(trainer).metrics_text()
        self._progress.update(self._train, **update)

    def on_validation_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self._progress is not None and not trainer.sanity_checking:
            batches = trainer.num_val_batches
            total = sum(batches) if isinstance(batches, list) else batches
            self._val = self._progress.add_task(
                "validate", total=None if total == float("inf") else total, metrics=""
            )

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        module: L.LightningModule,
        outputs: Any,
        batch: Any,
        idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._progress is not None and self._val is not None:
            self._progress.advance(self._val)

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self._progress is None or self._val is None:
            return
        self._progress.remove_task(self._val)
        self._val = None
        self._progress.console.print(
            f"validation at step {trainer.global_step}: {_val_text(trainer)}", highlight=False
        )

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._stop()

    def on_exception(
        self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress, self._train, self._val = None, None, None


def progress_callback(progress_bar: bool | None, log_every_n_steps: int) -> L.Callback:
    """The bar when asked for (null: when stderr is a terminal), plain lines otherwise."""
    show_bar = sys.stderr.isatty() if progress_bar is None else progress_bar
    return RichStepBar() if show_bar else ProgressLines(log_every_n_steps)


def _val_text(trainer: L.Trainer) -> str:
    metrics = {k: _value(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    return "  ".join(
        f"{k.removeprefix('val/')} {v:.4f}" for k, v in metrics.items() if v is not None
    )


def _value(metric: Any) -> float | None:
    return None if metric is None else float(metric)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
