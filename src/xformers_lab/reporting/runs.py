"""Read what a run directory or a sweep directory logged: metrics.csv, summary.json and the
Hydra overrides of each job. Nothing else (no checkpoint, no model)."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from xformers_lab.errors import UserError

METRICS_FILE = Path("logs") / "metrics.csv"
SUMMARY_FILE = "summary.json"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"


@dataclass(frozen=True)
class Series:
    """One metric of one run: values at optimizer steps done, and the tokens seen by then."""

    steps: np.ndarray
    values: np.ndarray
    tokens: np.ndarray | None
    """None when the run logged no token counts (and its summary cannot supply them)."""


@dataclass
class RunLogs:
    """Everything a report needs from one run directory."""

    path: Path
    overrides: list[str]
    summary: dict[str, Any]
    series: dict[str, Series] = field(default_factory=dict)
    label: str = ""
    """How plots and tables name the run (set by `load`: what tells it apart in a sweep)."""


def load(path: Path) -> list[RunLogs]:
    """The run at `path`, or the runs of the sweep at `path` (its subfolders that are runs, in
    job order), labelled by the overrides that differ between them."""
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; give a run directory or a sweep directory")
    if _is_run(path):
        runs = [read_run(path)]
        runs[0].label = path.name
        return runs
    jobs = sorted((p for p in path.iterdir() if p.is_dir() and _is_run(p)), key=_job_order)
    if not jobs:
        raise UserError(
            f"no run found in {path}: expected {METRICS_FILE} or {SUMMARY_FILE} in it "
            "(a run directory) or in its subfolders (a sweep directory)"
        )
    runs = [read_run(job) for job in jobs]
    for run, label in zip(runs, sweep_labels([r.overrides for r in runs]), strict=True):
        run.label = label or run.path.name
    return runs


def read_run(path: Path) -> RunLogs:
    """One run directory's overrides, summary and metric series."""
    overrides_path = path / OVERRIDES_FILE
    overrides = yaml.safe_load(overrides_path.read_text()) if overrides_path.is_file() else []
    summary_path = path / SUMMARY_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    metrics_path = path / METRICS_FILE
    rows = list(csv.DictReader(metrics_path.open())) if metrics_path.is_file() else []
    return RunLogs(path=path, overrides=list(overrides or []), summary=summary,
                   series=_series(rows, summary))  # fmt: skip


def sweep_labels(overrides: list[list[str]]) -> list[str]:
    """Per job, its overrides of the keys whose values differ between jobs (`a=1 b=x`)."""
    parsed = [dict(o.partition("=")[::2] for o in job) for job in overrides]
    keys = list(dict.fromkeys(k for job in parsed for k in job))
    varying = [k for k in keys if len({job.get(k) for job in parsed}) > 1]
    return [" ".join(f"{k}={job[k]}" for k in varying if k in job) for job in parsed]


def common_overrides(runs: list[RunLogs]) -> list[str]:
    """The overrides every run of a sweep shares (the sweep's fixed settings)."""
    shared = set(runs[0].overrides).intersection(*(r.overrides for r in runs[1:]))
    return [o for o in runs[0].overrides if o in shared]


def _series(rows: list[dict[str, str]], summary: dict[str, Any]) -> dict[str, Series]:
    """Lightning's CSV `step` counts from 0 at the first optimizer step, so steps done are
    step + 1 (as in summary.json and the progress lines). Tokens seen at a validation come from
    the nearest logged train steps (linear in steps)."""
    columns: dict[str, tuple[list[float], list[float]]] = {}
    for row in rows:
        step = float(row["step"]) + 1
        for key, value in row.items():
            if key not in ("step", "epoch") and value not in ("", None):
                columns.setdefault(key, ([], []))
                columns[key][0].append(step)
                columns[key][1].append(float(value))
    to_tokens = _token_axis(columns.get("train/tokens_seen"), summary)
    return {
        key: Series(
            steps=np.array(steps),
            values=np.array(values),
            tokens=None if to_tokens is None else to_tokens(np.array(steps)),
        )
        for key, (steps, values) in columns.items()
    }


def _token_axis(
    logged: tuple[list[float], list[float]] | None, summary: dict[str, Any]
) -> Callable[[np.ndarray], np.ndarray] | None:
    """steps -> tokens seen: from the logged counts, else the summary's average per step."""
    if logged is not None and len(logged[0]) >= 2:
        known_steps, known_tokens = np.array(logged[0]), np.array(logged[1])
        slope = (known_tokens[-1] - known_tokens[0]) / (known_steps[-1] - known_steps[0])
        return lambda steps: np.where(
            steps <= known_steps[-1],
            np.interp(steps, known_steps, known_tokens),
            known_tokens[-1] + slope * (steps - known_steps[-1]),
        )
    if summary.get("tokens_seen") and summary.get("steps"):
        per_step = summary["tokens_seen"] / summary["steps"]
        return lambda steps: steps * per_step
    return None


def _is_run(path: Path) -> bool:
    return (path / METRICS_FILE).is_file() or (path / SUMMARY_FILE).is_file()


def _job_order(path: Path) -> tuple[int, str]:
    """Numbered job folders (Hydra's 0, 1, ... 10) in numeric order, then the others by name."""
    return (int(path.name), "") if re.fullmatch(r"\d+", path.name) else (1 << 30, path.name)
