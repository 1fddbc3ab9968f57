"""A real 2 x 2 Hydra multirun: four jobs, each in its own directory with its summary.json, and
at the end the sweep table (csv and markdown) ranking every job by its best validation loss."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from xformers_lab.reporting.sweep import write_sweep_table


@pytest.mark.slow
def test_a_2x2_sweep_writes_a_table_ranking_its_four_jobs(
    tiny: list[str], run_cli, tmp_path: Path
) -> None:
    fixed = [a for a in tiny if not a.startswith(("optim.lr=", "model.n_layers="))]
    sweep = tmp_path / "sweep"
    args = ["-m", *fixed, "trainer.max_steps=10", "trainer.val_check_interval=5",
            "optim.lr=1e-3,3e-3", "model.n_layers=1,2", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    result = run_cli("xformers_lab.train", args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"sweep table: {sweep / 'sweep.csv'}" in result.stdout
    losses = {
        job: json.loads((sweep / job / "summary.json").read_text())["best_val_loss"]
        for job in ("0", "1", "2", "3")
    }
    rows = list(csv.DictReader((sweep / "sweep.csv").open()))
    assert [r["job"] for r in rows] == sorted(losses, key=losses.get)
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4]
    for row in rows:
        assert float(row["best_val_loss"]) == losses[row["job"]] and row["status"] == "done"
        settings = json.loads((sweep / row["job"] / "summary.json").read_text())
        assert settings["steps"] == int(row["steps"]) == 10
    assert {(r["optim.lr"], r["model.n_layers"]) for r in rows} == {
        ("0.001", "1"), ("0.001", "2"), ("0.003", "1"), ("0.003", "2"),
    }  # fmt: skip
    table = (sweep / "sweep.md").read_text().splitlines()
    header = "rank job optim.lr model.n_layers status best_val_loss best_val_step val_bpb"
    header += " final_train_loss steps train_tokens_per_sec wall_seconds"
    assert table[2] == "| " + " | ".join(header.split()) + " |"
    assert table[4].startswith(f"| 1 | {rows[0]['job']} |")
    assert f"| {losses[rows[0]['job']]:.4f} |" in table[4]


def test_a_job_without_summary_is_listed_last_as_failed(tmp_path: Path) -> None:
    for job, lr, loss in (("0", "1e-3", None), ("1", "3e-3", 2.5), ("2", "1e-2", 2.25)):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text(f"- optim.lr={lr}\n")
        if loss is not None:
            (tmp_path / job / "summary.json").write_text(json.dumps({"best_val_loss": loss}))
    csv_path, _ = write_sweep_table(tmp_path)
    rows = list(csv.DictReader(csv_path.open()))
    assert [(r["job"], r["optim.lr"], r["best_val_loss"]) for r in rows] == [
        ("2", "1e-2", "2.25"), ("1", "3e-3", "2.5"), ("0", "1e-3", ""),
    ]  # fmt: skip
    assert rows[2]["status"].startswith("failed")
