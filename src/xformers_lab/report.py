"""`python -m xformers_lab.report <run_dir_or_sweep_dir> [out=DIR]`: PNG plots and a markdown
table from a run's or a sweep's logs alone (metrics.csv, summary.json, .hydra/overrides.yaml).

`python -m xformers_lab.report <eval_run> <eval_run> ... [out=DIR]`: evaluation runs (folders
with results.json, from `xformers_lab.evaluate`) side by side: results.md and results.png.

Writes loss.png, bpb.png, lr.png, tokens_per_sec.png (each against optimizer steps and against
tokens seen; a sweep's jobs overlaid, labelled by the overrides that differ between them) and
report.md into `out` (default: <dir>/report).
"""

from __future__ import annotations

import sys
from pathlib import Path

from xformers_lab.errors import UserError, reported_user_errors
from xformers_lab.evaluation.overlay import eval_runs, write_overlay
from xformers_lab.reporting import plots, runs, table

USAGE = (
    "usage: python -m xformers_lab.report <run_dir_or_sweep_dir> [out=DIR] | "
    "<eval_run_dir> [<eval_run_dir> ...] [out=DIR]"
)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    with reported_user_errors():
        args = sys.argv[1:] if argv is None else argv
        evaluations = eval_runs([Path(a) for a in args if not a.startswith("out=")])
        if evaluations:
            outs = [a.removeprefix("out=") for a in args if a.startswith("out=")]
            out_dir = Path(outs[0]) if outs else evaluations[0].parent / "report"
            print(write_overlay(evaluations, out_dir))
            return
        source, out_dir = parse(args)
        print(write_report(source, out_dir))


def parse(argv: list[str]) -> tuple[Path, Path]:
    """(the directory to report on, where the report goes), with one-line errors."""
    paths = [a for a in argv if not a.startswith("out=")]
    outs = [a.removeprefix("out=") for a in argv if a.startswith("out=")]
    if len(paths) != 1 or len(outs) > 1 or any(not o for o in outs):
        raise UserError(f"expected one directory and at most one out=DIR; {USAGE}")
    source = Path(paths[0])
    return source, Path(outs[0]) if outs else source / "report"


def write_report(source: Path, out_dir: Path) -> Path:
    """Plot and tabulate the run or sweep at `source` into `out_dir`; returns report.md."""
    logged = runs.load(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = plots.plot_all(logged, out_dir, title=str(source))
    path = out_dir / "report.md"
    path.write_text(table.markdown(logged, source, written))
    return path


if __name__ == "__main__":
    main()
