"""Every shipped model preset trains through the real config tree and `train()`."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from xformers_lab.cli import compose_config
from xformers_lab.paths import conf_dir
from xformers_lab.settings import preset_arch
from xformers_lab.tasks import objective_class, objective_names
from xformers_lab.training.run import train

PRESETS = sorted(path.stem for path in (conf_dir() / "model").glob("*.yaml"))


def task_for(preset: str) -> str:
    """The first pretraining objective (by name) that trains the preset's architecture."""
    arch = preset_arch(preset)
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


def test_bert_learns_fast_by_default_and_keeps_the_original_layout_one_override_away() -> None:
    """Rotary positions leave MLM's unigram plateau within ~100 steps where learned ones take
    ~1,250 (recipes/bert_mlm_cpu), so the default run learns in its budget."""
    bert = compose_config("train", ["model=bert", "task=mlm"]).model
    original = compose_config("train", ["model=bert_original", "task=mlm"]).model
    assert (bert.position, bert.norm_position, bert.embedding_norm) == ("rope", "pre", False)
    assert (original.position, original.norm_position, original.embedding_norm) == (
        "learned", "post", True,
    )  # fmt: skip
    differ = {k for k in bert if bert[k] != original[k]}
    assert differ == {"position", "norm_position", "embedding_norm"}
