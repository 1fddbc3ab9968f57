"""The report from hand-written logs: labels, the tokens axis, runs without summary, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from xformers_lab import report
from xformers_lab.errors import UserError
from xformers_lab.reporting import runs, table

FIELDS = ["epoch", "step", "train/loss", "train/lr", "train/tokens_seen", "val/loss", "val/bpb"]


def _write_run(path: Path, overrides: list[str], *, tokens: bool, summary: bool) -> None:
    """A run that logged every 10 steps and validated at 20 and 40 (256 tokens per step)."""
    (path / "logs").mkdir(parents=True)
    (path / ".hydra").mkdir()
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    with (path / "logs" / "metrics.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, FIELDS)
        writer.writeheader()
        for step in (10, 20, 30, 40):
            row = {"epoch": 0, "step": step - 1, "train/loss": 6 - step / 10, "train/lr": 1e-3}
            if tokens:
                row["train/tokens_seen"] = 256 * step
            writer.writerow(row)
            if step % 20 == 0:
                writer.writerow({"epoch": 0, "step": step - 1, "val/loss": 5.5 - step / 20,
                                 "val/bpb": 8 - step / 20})  # fmt: skip
    if summary:
        figures = {"steps": 40, "tokens_seen": 256 * 40, "best_val_loss": 3.5, "val_bpb": 6.0}
        (path / "summary.json").write_text(json.dumps(figures))


def test_labels_name_only_what_differs() -> None:
    labels = runs.sweep_labels(
        [["a=1", "lr=0.1", "b=x"], ["a=1", "lr=0.2", "b=x"], ["a=1", "lr=0.2", "b=y"]]
    )
    assert labels == ["lr=0.1 b=x", "lr=0.2 b=x", "lr=0.2 b=y"]


def test_validations_get_the_tokens_seen_at_their_step(tmp_path: Path) -> None:
    _write_run(tmp_path / "run", ["a=1"], tokens=True, summary=True)
    (run,) = runs.load(tmp_path / "run")
    val = run.series["val/loss"]
    assert val.steps.tolist() == [20, 40]  # steps done, as summary.json counts them
    assert val.tokens.tolist() == [256 * 20, 256 * 40]


def test_tokens_axis_falls_back_on_the_summary(tmp_path: Path) -> None:
    _write_run(tmp_path / "run", ["a=1"], tokens=False, summary=True)
    (run,) = runs.load(tmp_path / "run")
    assert np.allclose(run.series["train/loss"].tokens, run.series["train/loss"].steps * 256)


def test_sweep_with_an_unfinished_job(tmp_path: Path) -> None:
    _write_run(tmp_path / "sweep" / "0", ["lr=0.1", "n=2"], tokens=True, summary=True)
    _write_run(tmp_path / "sweep" / "1", ["lr=0.2", "n=2"], tokens=False, summary=False)
    (tmp_path / "sweep" / "10").mkdir()  # a job that never logged anything is not a run
    path = report.write_report(tmp_path / "sweep", tmp_path / "out")
    text = path.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == 2
    assert rows[0].startswith("| `lr=0.1` | 40 | **3.5000** |") and rows[0].endswith("| done |")
    assert rows[1].startswith("| `lr=0.2` | 40 | 3.5000 | 6.000 | 2.0000 | n/a |")  # from logs
    assert "unfinished" in rows[1]
    assert "Every job: `n=2`" in text
    written = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert written == ["bpb.png", "loss.png", "lr.png"]  # nobody logged tokens/s
    assert all(f"![{Path(name).stem}]({name})" in text for name in written)


def test_figures_from_logs_take_the_bpb_of_the_best_validation(tmp_path: Path) -> None:
    _write_run(tmp_path / "run", [], tokens=False, summary=False)
    (run,) = runs.load(tmp_path / "run")
    assert table.figures(run) == {
        "best_val_loss": 3.5, "val_bpb": 6.0, "final_train_loss": 2.0, "steps": 40,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "expected one directory"),
        (["a", "b"], "expected one directory"),
        (["a", "out="], "expected one directory"),
        (["{missing}"], "is not a directory"),
        (["{empty}"], "no run found in"),
    ],
)
def test_mistakes_cost_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "empty").mkdir()
    argv = [a.format(missing=tmp_path / "missing", empty=tmp_path / "empty") for a in argv]
    with pytest.raises(SystemExit) as exit_:
        report.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_parse_defaults_the_output_next_to_the_logs() -> None:
    assert report.parse(["runs/x"]) == (Path("runs/x"), Path("runs/x/report"))
    assert report.parse(["runs/x", "out=/tmp/r"]) == (Path("runs/x"), Path("/tmp/r"))
    with pytest.raises(UserError):
        report.parse(["runs/x", "out=a", "out=b"])


def test_a_run_without_metrics_log_gets_a_table_and_says_why_there_are_no_plots(
    tmp_path: Path,
) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"steps": 7, "best_val_loss": 2.0}))
    text = report.write_report(tmp_path / "run", tmp_path / "out").read_text()
    assert (
        "| `run` | 7 | **2.0000** |" in text and "No plots: no run has a logs/metrics.csv" in text
    )
    assert not list((tmp_path / "out").glob("*.png"))
