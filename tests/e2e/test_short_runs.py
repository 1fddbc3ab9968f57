"""The first commands people type: a run of any length ends with a usable `best.ckpt` (the
end-of-run validation counts), and a warmup longer than the run is shortened to fit it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import xformers_lab
from xformers_lab.cli import compose_config
from xformers_lab.settings import resolve_settings
from xformers_lab.training.run import train


def test_a_run_shorter_than_the_validation_interval_ends_with_a_best_checkpoint(
    tmp_path: Path, tiny: list[str]
) -> None:
    overrides = [*tiny, "trainer.max_steps=6", "trainer.val_check_interval=250"]
    summary = train(compose_config("train", overrides), tmp_path)
    best = tmp_path / "checkpoints" / "best.ckpt"
    assert summary["checkpoint"] == str(best) and summary["best_val_step"] == 6
    saved = torch.load(best, map_location="cpu", weights_only=True)
    assert saved["global_step"] == 6 and saved["optimizer_states"]  # resumable, not weights only
    assert xformers_lab.load(best).generate("def ", max_new_tokens=3) is not None


@pytest.mark.slow
def test_the_end_of_run_validation_competes_for_best(tmp_path: Path, tiny: list[str]) -> None:
    overrides = [*tiny, "trainer.max_steps=14", "trainer.val_check_interval=5"]
    summary = train(compose_config("train", overrides), tmp_path)
    losses = dict(zip([5, 10, 14], validation_losses(tmp_path), strict=True))  # in logged order
    assert summary["best_val_step"] == min(losses, key=losses.get) == 14  # it still learns
    saved = torch.load(summary["checkpoint"], map_location="cpu", weights_only=True)
    assert saved["global_step"] == 14


def validation_losses(run_dir: Path) -> list[float]:
    rows = csv.DictReader((run_dir / "logs" / "metrics.csv").open())
    return [float(row["val/loss"]) for row in rows if row["val/loss"]]


def test_a_warmup_longer_than_the_run_is_shortened_with_a_note() -> None:
    settings = resolve_settings(compose_config("train", ["trainer.max_steps=20"]))
    assert settings.scheduler["warmup_steps"] == 2
    assert settings.notes == (
        "scheduler.warmup_steps=100 is longer than the run (trainer.max_steps=20): warming up "
        "over 2 steps instead",
    )
    fits = resolve_settings(compose_config("train", ["trainer.max_steps=200"]))
    assert fits.scheduler["warmup_steps"] == 100 and fits.notes == ()
