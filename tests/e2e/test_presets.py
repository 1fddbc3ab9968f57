"""Every shipped model preset trains through the real config tree and `train()`."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from xformers_lab.cli import compose_config
from xformers_lab.paths import conf_dir
from xformers_lab.tasks import objective_class, objective_names
from xformers_lab.train import train

PRESETS = sorted(path.stem for path in (conf_dir() / "model").glob("*.yaml"))


def task_for(preset: str) -> str:
    """The first pretraining objective (by name) that trains the preset's architecture."""
    arch = OmegaConf.load(conf_dir() / "model" / f"{preset}.yaml").get("arch", "decoder")
    packed = [name for name in objective_names() if not objective_class(name).fields]
    return next(name for name in packed if arch in objective_class(name).archs)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_model_preset_trains(preset: str, tmp_path: Path, tiny: list[str]) -> None:
    overrides = [f"model={preset}", f"task={task_for(preset)}", *tiny, "trainer.max_steps=20"]
    cfg = compose_config("train", overrides)
    summary = train(cfg, tmp_path)
    assert summary["steps"] == 20
    assert math.isfinite(summary["best_val_loss"]) and summary["best_val_loss"] < math.log(363)
    assert Path(summary["checkpoint"]).is_file()


def test_bf16_mixed_trains_on_cpu(tmp_path: Path, tiny: list[str]) -> None:
    cfg = compose_config("train", ["model=llama", *tiny, "trainer.precision=bf16-mixed"])
    assert math.isfinite(train(cfg, tmp_path)["best_val_loss"])


def test_the_final_step_is_always_validated(tmp_path: Path, tiny: list[str]) -> None:
    """20 steps with validation every 15: validated at 15 and, after fit, at 20."""
    overrides = [*tiny, "trainer.max_steps=20", "trainer.val_check_interval=15"]
    summary = train(compose_config("train", overrides), tmp_path)
    rows = list(csv.DictReader((tmp_path / "logs" / "metrics.csv").open()))
    validated_at = [int(r["step"]) for r in rows if r.get("val/loss")]
    assert len(validated_at) == 2 and validated_at[0] < validated_at[1]
    assert summary["final_val_loss"] == pytest.approx(float(rows[-1]["val/loss"]))
