"""results.json (the harness's own format) and results.md (a table) in a run directory.

Harness runs are written as lm-eval returns them; a perplexity run is shaped the same way, as
one task `perplexity` whose metrics carry the harness's `metric,filter` keys, so `report` and
any tool that reads harness results read both.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
PERPLEXITY_TASK = "perplexity"
LOWER_IS_BETTER = {"loss", "perplexity", "bits_per_byte", "word_perplexity", "byte_perplexity"}
SKIPPED = {"alias", "sample_len"}
"""Entries of a task's results that are not metrics."""
COUNTS = {"tokens", "bytes", "documents", "windows"}
"""Perplexity run figures that are sizes, not scores."""


def perplexity_results(metrics: dict[str, float | int], config: dict[str, Any]) -> dict[str, Any]:
    """A perplexity run's figures in the harness's results layout."""
    return {
        "results": {
            PERPLEXITY_TASK: {
                "alias": PERPLEXITY_TASK,
                **{f"{name},none": value for name, value in metrics.items()},
            }
        },
        "higher_is_better": {PERPLEXITY_TASK: dict.fromkeys(("loss", "perplexity"), False)},
        "n-shot": {PERPLEXITY_TASK: 0},
        "config": config,
    }


def write_results(run_dir: Path, results: dict[str, Any]) -> tuple[Path, Path]:
    """Write results.json and results.md into `run_dir`; returns their paths."""
    run_dir.mkdir(parents=True, exist_ok=True)
    samples = results.pop("samples", None)
    json_path, md_path = run_dir / RESULTS_JSON, run_dir / RESULTS_MD
    if samples:
        for task, rows in samples.items():
            lines = (json.dumps(row, default=_plain) + "\n" for row in rows)
            (run_dir / f"samples_{task}.jsonl").write_text("".join(lines))
    json_path.write_text(json.dumps(results, indent=2, default=_plain) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path


def metric_rows(
    results: dict[str, Any],
) -> list[tuple[str, int | None, str, float | int, float | None]]:
    """(task, n-shot, metric, value, stderr) of every numeric metric, in task order."""
    rows = []
    for task, metrics in results.get("results", {}).items():
        shots = results.get("n-shot", {}).get(task)
        for key, value in metrics.items():
            name, _, filter_ = key.partition(",")
            if name in SKIPPED or "_stderr" in name or not isinstance(value, int | float):
                continue
            label = name if filter_ in ("", "none") else f"{name} ({filter_})"
            stderr = metrics.get(f"{name}_stderr,{filter_}")
            usable = isinstance(stderr, int | float) and math.isfinite(stderr)
            rows.append((task, shots, label, value, float(stderr) if usable else None))
    return rows


def markdown(results: dict[str, Any]) -> str:
    """A table: task, n-shot, metric, value ± stderr, with which direction is better."""
    lines = ["| task | n-shot | metric | | value | ± stderr |", "|---|---:|---|---|---:|---:|"]
    for task, shots, metric, value, stderr in metric_rows(results):
        arrow = _direction(metric.split(" ")[0])
        err = f"{stderr:.4f}" if stderr is not None else ""
        shots_text = "" if shots is None else str(shots)
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"| {task} | {shots_text} | {metric} | {arrow} | {shown} | {err} |")
    return "\n".join(lines) + "\n"


def _direction(metric: str) -> str:
    if metric in COUNTS:
        return ""
    return "↓" if metric in LOWER_IS_BETTER else "↑"


def _plain(value: Any) -> Any:
    """What json cannot write (numpy numbers, dtypes, callables) as plain values or text."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
