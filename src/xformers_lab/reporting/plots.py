"""PNG plots of logged metrics: one figure per quantity, against optimizer steps (left) and
tokens seen (right), a sweep's jobs overlaid in one colour each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure  # a bare Figure renders with Agg: no pyplot, no display

from xformers_lab.reporting.runs import RunLogs, Series


@dataclass(frozen=True)
class Plot:
    """One figure: the metrics drawn in it (key, line style, legend suffix) and its y axis."""

    name: str
    title: str
    ylabel: str
    lines: tuple[tuple[str, str, str], ...]
    from_zero: bool = False
    """Start the y axis at 0 (rates and throughput read honestly)."""


PLOTS = (
    Plot("loss", "Loss", "nats/token", (("train/loss", "-", "train"), ("val/loss", "o--", "val"))),
    Plot("bpb", "Validation bits per byte", "bits/byte", (("val/bpb", "o-", ""),)),
    Plot("lr", "Learning rate", "learning rate", (("train/lr", "-", ""),), from_zero=True),
    Plot("tokens_per_sec", "Training throughput", "tokens/s",
         (("train/tokens_per_sec", "-", ""),), from_zero=True),
)  # fmt: skip


def plot_all(runs: list[RunLogs], out_dir: Path, title: str) -> list[Path]:
    """Write every plot for which some run logged a metric; returns the files written."""
    written = []
    for plot in PLOTS:
        if any(key in run.series for run in runs for key, _, _ in plot.lines):
            path = out_dir / f"{plot.name}.png"
            draw(plot, runs, title).savefig(path, dpi=110)
            written.append(path)
    return written


def draw(plot: Plot, runs: list[RunLogs], title: str) -> Figure:
    """The figure of `plot`: by step and by tokens seen, one colour per run."""
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    by_step, by_tokens = fig.subplots(1, 2, sharey=True)
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for run, colour in zip(runs, colours, strict=True):
        for key, style, suffix in plot.lines:
            series = run.series.get(key)
            if series is None:
                continue
            label = f"{run.label} {suffix}".strip() if len(runs) > 1 or suffix else run.label
            _line(by_step, series.steps, series, style, colour, label)
            if series.tokens is not None:
                _line(by_tokens, series.tokens, series, style, colour, label)
    by_step.set_xlabel("optimizer steps")
    by_tokens.set_xlabel("tokens seen")
    by_step.set_ylabel(plot.ylabel)
    for axes in (by_step, by_tokens):
        axes.grid(alpha=0.3)
    if plot.from_zero:
        by_step.set_ylim(bottom=0)
    fig.suptitle(f"{plot.title} - {title}")
    handles, labels = by_step.get_legend_handles_labels()
    if handles:
        # columns fill first: one column per run keeps its train and val lines together
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(runs)),
                   fontsize="small")  # fmt: skip
    return fig


def _line(axes: Axes, x: np.ndarray, series: Series, style: str, colour: str, label: str) -> None:
    marker = "o" in style
    axes.plot(x, series.values, style.replace("o", ""), color=colour, label=label,
              marker="o" if marker else None, markersize=4)  # fmt: skip
