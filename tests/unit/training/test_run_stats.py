"""Steady-state throughput: warm-up steps, validations and the checkpoints written after them
are left out of the tokens/s in `summary.json`."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from xformers_lab.training import run_stats
from xformers_lab.training.run_stats import RunStats

TOKENS = 100  # per step


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_validation_and_the_checkpoint_after_it_do_not_count(monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(run_stats.time, "perf_counter", clock)
    stats, module = RunStats(skip_steps=2), SimpleNamespace(batch_tokens=lambda batch: TOKENS)
    trainer = SimpleNamespace(
        global_step=0, max_steps=10, world_size=1, sanity_checking=False, callback_metrics={}
    )

    def pause(seconds_validating: float, seconds_checkpointing: float) -> None:
        stats.on_validation_start(trainer, module)
        clock.now += seconds_validating
        stats.on_validation_end(trainer, module)
        clock.now += seconds_checkpointing  # ModelCheckpoint saves after our hook

    for step in range(1, 11):
        stats.on_train_batch_start(trainer, module, None, step)
        clock.now += 5.0 if step <= 2 else 1.0  # slow warm-up steps
        trainer.global_step = step
        stats.on_train_batch_end(trainer, module, None, None, step)
        if step in (5, 10):
            pause(3.0, 4.0)
    stats.on_train_end(trainer, module)

    assert stats.tokens_per_second() == pytest.approx(8 * TOKENS / 8.0)  # steps 3-10, 1 s each
    assert [v["step"] for v in stats.validations] == [5, 10]
