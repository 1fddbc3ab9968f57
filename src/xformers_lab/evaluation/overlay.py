"""Several evaluation runs side by side: one table row per (task, metric), one column per run,
and a bar chart of the scores in [0, 1] (accuracies, exact match).

    python -m xformers_lab.report outputs/eval/gpt-0shot outputs/eval/gpt-5shot out=compare
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot, no display

from xformers_lab.errors import UserError
from xformers_lab.evaluation.results import RESULTS_JSON, metric_rows

Key = tuple[str, str]
"""(task, metric)."""


def eval_runs(paths: list[Path]) -> list[Path]:
    """The evaluation runs `paths` name: each path that holds results.json, or the subfolders
    of one that does not (a sweep's jobs), in order. Empty when none is an evaluation run."""
    runs: list[Path] = []
    for path in paths:
        if (path / RESULTS_JSON).is_file():
            runs.append(path)
        elif path.is_dir():
            runs += sorted(p for p in path.iterdir() if (p / RESULTS_JSON).is_file())
    missing = [path for path in paths if not path.exists()]
    if runs and missing:  # otherwise the training report says what is wrong
        raise UserError(f"{missing[0]} does not exist; give evaluation run directories")
    return runs


def write_overlay(runs: list[Path], out_dir: Path) -> Path:
    """Write results.md and results.png comparing `runs` into `out_dir`; returns results.md."""
    labels = _labels(runs)
    table: dict[Key, dict[str, float | int]] = {}
    for run, label in zip(runs, labels, strict=True):
        results = json.loads((run / RESULTS_JSON).read_text())
        for task, _, metric, value, _ in metric_rows(results):
            table.setdefault((task, metric), {})[label] = value
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"| task | metric | {' | '.join(labels)} |", "|---|---|" + "---:|" * len(labels)]
    for (task, metric), values in table.items():
        cells = [_cell(values.get(label)) for label in labels]
        lines.append(f"| {task} | {metric} | {' | '.join(cells)} |")
    lines.append("")
    lines += [f"- {label}: {_describe(run)}" for run, label in zip(runs, labels, strict=True)]
    path = out_dir / "results.md"
    path.write_text("\n".join(lines) + "\n")
    _plot(table, labels, out_dir / "results.png")
    return path


def _labels(runs: list[Path]) -> list[str]:
    """Each run's folder name; the parent's too where names repeat."""
    names = [run.name for run in runs]
    return [
        f"{run.parent.name}/{run.name}" if names.count(run.name) > 1 else run.name for run in runs
    ]


def _describe(run: Path) -> str:
    """The checkpoint and few-shot setting a run's config.yaml records."""
    config_path = run / "config.yaml"
    if not config_path.is_file():
        return str(run)
    config = yaml.safe_load(config_path.read_text()) or {}
    shots = config.get("num_fewshot")
    return f"ckpt={config.get('ckpt')} num_fewshot={'task default' if shots is None else shots}"


def _cell(value: float | int | None) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _plot(table: dict[Key, dict[str, float | int]], labels: list[str], path: Path) -> None:
    """Grouped bars of the metrics whose every value lies in [0, 1]."""
    keys = [k for k, v in table.items() if v and all(0 <= x <= 1 for x in v.values())]
    fig = Figure(figsize=(max(6.0, 1.2 * len(keys) * len(labels) ** 0.5), 4))
    ax = fig.add_subplot()
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        xs = [k + (i - (len(labels) - 1) / 2) * width for k in range(len(keys))]
        ax.bar(xs, [table[key].get(label, 0.0) for key in keys], width, label=label)
    ax.set_xticks(range(len(keys)), [f"{task}\n{metric}" for task, metric in keys], fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
