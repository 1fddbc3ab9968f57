"""The sweep table: when a multirun ends (locally or on Slurm), every job of the sweep ranked by
its best validation loss, as `sweep.csv` and `sweep.md` in the sweep directory."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from xformers_lab.reporting.runs import OVERRIDES_FILE, RunLogs, read_run
from xformers_lab.reporting.table import figures

FIGURES = (
    ("best_val_loss", ".4f"),
    ("best_val_step", "d"),
    ("val_bpb", ".3f"),
    ("final_train_loss", ".4f"),
    ("steps", "d"),
    ("train_tokens_per_sec", ".0f"),
    ("wall_seconds", ".0f"),
)
"""(summary.json key, markdown format) of the figure columns, in order."""


class SweepTable(Callback):
    """Hydra callback (`hydra.callbacks` in conf/train.yaml), run by the process that launched
    the sweep once every job has returned."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            csv_path, _ = write_sweep_table(sweep_dir)
            print(f"sweep table: {csv_path} (and sweep.md)")


def write_sweep_table(sweep_dir: Path) -> tuple[Path, Path]:
    """Rank the jobs under `sweep_dir` (each folder Hydra started a job in) and write the table."""
    jobs = sorted(
        (read_run(p.parent.parent) for p in sweep_dir.glob(f"*/{OVERRIDES_FILE}")),
        key=_rank_key,
    )
    swept = _swept_keys(jobs)
    header = ["rank", "job", *swept, "status", *(key for key, _ in FIGURES)]
    rows = []
    for rank, job in enumerate(jobs, start=1):
        settings = dict(o.partition("=")[::2] for o in job.overrides)
        values = figures(job)
        rows.append(
            [
                rank,
                job.path.name,
                *(settings.get(key, "") for key in swept),
                "done" if job.summary else "failed or unfinished (no summary.json)",
                *(values.get(key) for key, _ in FIGURES),
            ]
        )
    csv_path, md_path = sweep_dir / "sweep.csv", sweep_dir / "sweep.md"
    with csv_path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
    md_path.write_text(_markdown(sweep_dir, header, rows))
    return csv_path, md_path


def _rank_key(job: RunLogs) -> tuple[bool, float, str]:
    """Finished jobs by best validation loss, then the others; ties by folder name."""
    loss = figures(job).get("best_val_loss")
    return (loss is None, loss if loss is not None else 0.0, job.path.name)


def _swept_keys(jobs: list[RunLogs]) -> list[str]:
    """The override keys whose values differ between jobs, in command-line order."""
    parsed = [dict(o.partition("=")[::2] for o in job.overrides) for job in jobs]
    keys = list(dict.fromkeys(k for job in parsed for k in job))
    return [k for k in keys if len({job.get(k) for job in parsed}) > 1]


def _markdown(sweep_dir: Path, header: list[str], rows: list[list[Any]]) -> str:
    n_figures = len(FIGURES)
    formats = [""] * (len(header) - n_figures) + [spec for _, spec in FIGURES]
    lines = [f"# Sweep {sweep_dir}", "", _md_row(header), _md_row(["---"] * len(header))]
    for row in rows:
        cells = [_format(value, spec) for value, spec in zip(row, formats, strict=True)]
        lines.append(_md_row(cells))
    return "\n".join(lines) + "\n"


def _format(value: Any, spec: str) -> str:
    if value is None:
        return "n/a"
    return format(value, spec) if spec and isinstance(value, int | float) else str(value)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"
