"""The markdown summary: one row per run from its summary.json (or, for a run that never wrote
one, from its metrics.csv), then the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xformers_lab.reporting.runs import METRICS_FILE, RunLogs, common_overrides

COLUMNS = (
    ("steps", "steps", ","),
    ("best_val_loss", "best val loss", ".4f"),
    ("val_bpb", "val bpb", ".3f"),
    ("final_train_loss", "final train loss", ".4f"),
    ("tokens_seen", "tokens seen", ","),
    ("train_tokens_per_sec", "tokens/s", ",.0f"),
    ("n_params", "params", ","),
    ("wall_seconds", "wall s", ".0f"),
)
"""(summary.json key, header, format) of each figure column."""


def figures(run: RunLogs) -> dict[str, Any]:
    """The row's figures: the summary's, else what the metrics log tells."""
    if run.summary:
        return run.summary
    found: dict[str, Any] = {}
    if (val := run.series.get("val/loss")) is not None:
        found["best_val_loss"] = float(val.values.min())
    if (bpb := run.series.get("val/bpb")) is not None:
        found["val_bpb"] = float(
            bpb.values[val.values.argmin()] if val is not None else bpb.values.min()
        )
    if (train := run.series.get("train/loss")) is not None:
        found["final_train_loss"] = float(train.values[-1])
        found["steps"] = int(train.steps[-1])
    if (tokens := run.series.get("train/tokens_seen")) is not None:
        found["tokens_seen"] = int(tokens.values[-1])
    return found


def markdown(runs: list[RunLogs], source: Path, plots: list[Path]) -> str:
    """The report: the table (best validation loss in bold), the shared overrides, the plots."""
    best = _best(runs)
    header = ["run", *(title for _, title, _ in COLUMNS), "status"]
    lines = [f"# Report: {source}", "", _row(header), _row(["---"] * len(header))]
    for run in runs:
        values = figures(run)
        cells = [_cell(values.get(key), spec) for key, _, spec in COLUMNS]
        if run is best:
            cells[1] = f"**{cells[1]}**"
        status = "done" if run.summary else "no summary.json (unfinished?)"
        lines.append(_row([f"`{run.label}`", *cells, status]))
    lines.append("")
    if len(runs) > 1 and (shared := common_overrides(runs)):
        lines += [f"Every job: `{' '.join(shared)}`", ""]
    elif len(runs) == 1 and runs[0].overrides:
        lines += [f"Overrides: `{' '.join(runs[0].overrides)}`", ""]
    lines += ["Directories: " + ", ".join(f"`{r.path}`" for r in runs), ""]
    lines += [f"![{plot.stem}]({plot.name})" for plot in plots] or [
        f"No plots: no run has a {METRICS_FILE} (train with logger=csv or logger=[csv,wandb])."
    ]
    return "\n".join(lines) + "\n"


def _best(runs: list[RunLogs]) -> RunLogs | None:
    scored = [(figures(r)["best_val_loss"], i) for i, r in enumerate(runs)
              if figures(r).get("best_val_loss") is not None]  # fmt: skip
    return runs[min(scored)[1]] if scored else None


def _cell(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
