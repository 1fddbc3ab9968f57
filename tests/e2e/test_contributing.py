"""docs/contributing.md's example objective is real: its module and YAML, taken from the page as
they are, train through the unchanged shell and load back with their verb."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import xformers_lab
from xformers_lab.cli import compose_config
from xformers_lab.tasks import objective_class
from xformers_lab.training.run import train

PAGE = Path(__file__).parents[2] / "docs" / "contributing.md"
MODULE = "xformers_lab.tasks.regress"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


@pytest.fixture
def regress(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The page's module imported as `xformers_lab.tasks.regress`; its YAML in a config dir."""
    module = types.ModuleType(MODULE)
    monkeypatch.setitem(sys.modules, MODULE, module)
    exec(compile(blocks("python")[0], f"{PAGE}:regress.py", "exec"), module.__dict__)
    conf = tmp_path / "conf" / "task"
    conf.mkdir(parents=True)
    (conf / "regress.yaml").write_text(blocks("yaml")[0])
    return conf.parent


@pytest.mark.slow
def test_the_example_objective_trains_and_scores(regress: Path, tmp_path: Path) -> None:
    """Scores are the share of `a` in 8-letter words of a and b: a mean-pooled encoder learns
    them fast. The run must beat always predicting the mean by far."""
    rng = random.Random(0)
    words = ["".join(rng.choice("ab") for _ in range(8)) for _ in range(400)]
    rows = [{"text": w, "stars": w.count("a") / 8} for w in words]
    data = tmp_path / "scores.jsonl"
    data.write_text("".join(f'{{"text": "{r["text"]}", "stars": {r["stars"]}}}\n' for r in rows))
    overrides = [
        f"hydra.searchpath=[file://{regress}]", "model=bert", "task=regress", "tokenizer=char",
        "data=text", f"data.path={data}", "+data.score_field=stars", "data.seq_len=16",
        "data.batch_size=16", "data.val_fraction=0.1", "model.n_layers=1", "model.d_model=32",
        "trainer.max_steps=150", "trainer.val_check_interval=50", "scheduler.warmup_steps=10",
        "optim.lr=3e-3",
    ]  # fmt: skip
    summary = train(compose_config("train", overrides), tmp_path / "run")
    mean = sum(r["stars"] for r in rows) / len(rows)
    spread = (sum((r["stars"] - mean) ** 2 for r in rows) / len(rows)) ** 0.5
    assert summary["task"] == "regress" and summary["best_val_rmse"] < 0.5 * spread
    assert summary["flops_per_token"] > 0
    lab = xformers_lab.load(summary["checkpoint"])
    assert type(lab.objective) is objective_class("regress")
    low, high = lab.score(["bbbbbbbb", "aaaaaaaa"])
    assert low < 0.3 < 0.7 < high


def test_the_example_module_is_ruff_clean() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run(
        [str(ruff), "check", "--stdin-filename", "src/xformers_lab/tasks/regress.py", "-"],
        input=blocks("python")[0],
        capture_output=True,
        text=True,
        cwd=PAGE.parents[1],
        check=False,
    )
    assert result.returncode == 0, result.stdout
