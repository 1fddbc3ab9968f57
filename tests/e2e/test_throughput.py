"""Every run logs throughput and FLOPs per token, and puts them in `summary.json`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from xformers_lab.cli import compose_config
from xformers_lab.estimates import flops_per_token
from xformers_lab.settings import resolve_settings


def test_metrics_and_summary_carry_throughput(tiny_run: Path, tiny: list[str]) -> None:
    settings = resolve_settings(compose_config("train", tiny))
    shape = settings.row_shape()
    expected = flops_per_token(settings.model_config(363), shape.seq_len)  # byte vocabulary
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["flops_per_token"] == pytest.approx(expected)
    assert summary["mfu"] is None  # a CPU has no known peak
    assert summary["train_tokens_per_sec"] > 0
    rows = list(csv.DictReader((tiny_run / "logs" / "metrics.csv").open()))
    logged = [row for row in rows if row.get("train/loss")]
    assert len(logged) == 30 // 5  # trainer.log_every_n_steps=5
    assert all(float(row["train/flops_per_token"]) == pytest.approx(expected) for row in logged)
    assert all(float(row["train/tokens_per_sec"]) > 0 for row in logged)
    assert all(not row.get("train/mfu") for row in rows)
