"""`python -m xformers_lab.report` on a real tiny run and a real tiny 2-job sweep: the plots are
images with curves in them, the table holds each job's figures, all from the logs alone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PLOTS = ("loss.png", "bpb.png", "lr.png", "tokens_per_sec.png")
BLUE, ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's C0 and C1: the first two runs


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def _has_colour(pixels: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    return bool((np.abs(pixels.astype(int) - rgb).sum(-1) < 30).sum() > 200)


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory, tiny: list[str], run_cli) -> Path:
    """Two jobs that differ in their learning rate, through Hydra's multirun."""
    root = tmp_path_factory.mktemp("sweep")
    args = ["-m", *[a for a in tiny if not a.startswith("optim.lr=")], "optim.lr=3e-3,1e-3",
            f"hydra.sweep.dir={root / 'sweep'}"]  # fmt: skip
    result = run_cli("xformers_lab.train", args, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "sweep"


def test_the_logs_hold_what_the_plots_need(tiny_run: Path) -> None:
    rows = list(csv.DictReader((tiny_run / "logs" / "metrics.csv").open()))
    train = [r for r in rows if r["train/loss"]]
    assert all(float(r["train/tokens_per_sec"]) > 0 for r in train)
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert float(train[-1]["train/tokens_seen"]) == summary["tokens_seen"]


def test_report_on_a_run(tiny_run: Path, tmp_path: Path, run_cli) -> None:
    result = run_cli("xformers_lab.report", [str(tiny_run), f"out={tmp_path}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(tmp_path / "report.md")
    for name in PLOTS:
        pixels = _pixels(tmp_path / name)
        assert pixels.shape[0] > 300 and pixels.shape[1] > 600
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, name  # text, axes, curves
        assert _has_colour(pixels, BLUE), name
    summary = json.loads((tiny_run / "summary.json").read_text())
    text = (tmp_path / "report.md").read_text()
    (row,) = [line for line in text.splitlines() if line.startswith("| `")]
    assert f"**{summary['best_val_loss']:.4f}**" in row and f"{summary['val_bpb']:.3f}" in row
    assert "| 30 |" in row and f"{summary['tokens_seen']:,}" in row


@pytest.mark.slow
def test_report_on_a_sweep_overlays_its_jobs(tiny_sweep: Path, run_cli) -> None:
    result = run_cli("xformers_lab.report", [str(tiny_sweep)], cwd=tiny_sweep)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tiny_sweep / "report"
    for name in PLOTS:
        pixels = _pixels(out / name)
        assert _has_colour(pixels, BLUE) and _has_colour(pixels, ORANGE), name
    text = (out / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["optim.lr=0.003", "optim.lr=0.001"]
    losses = [json.loads((tiny_sweep / job / "summary.json").read_text())["best_val_loss"]
              for job in ("0", "1")]  # fmt: skip
    best = int(np.argmin(losses))
    assert f"**{losses[best]:.4f}**" in rows[best] and "**" not in rows[1 - best]
    assert "Every job: `model.n_layers=1" in text
