"""A sweep submitted to Slurm: each value of the swept key runs as its own Slurm job."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

pytestmark = pytest.mark.slurm


def test_a_two_job_sweep_runs_as_slurm_jobs(
    tmp_path: Path, tiny: list[str], job_env: dict[str, str], sweep_command, job_id
) -> None:
    sweep = tmp_path / "multirun"
    result = subprocess.run(
        sweep_command(sweep, [*tiny, "optim.lr=1e-3,3e-3"]),
        cwd=tmp_path,
        env=job_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for number, lr in enumerate(["0.001", "0.003"]):
        run = sweep / str(number)
        assert f"optim.lr={lr}" in OmegaConf.load(run / ".hydra" / "overrides.yaml")
        assert json.loads((run / "summary.json").read_text())["steps"] == 30
    assert job_id(sweep / "0") != job_id(sweep / "1")  # two Slurm jobs (array tasks)
    table = list(csv.DictReader((sweep / "sweep.csv").open()))  # written by the submitting side
    assert sorted((r["job"], r["status"]) for r in table) == [("0", "done"), ("1", "done")]
