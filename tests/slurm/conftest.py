"""Real submissions to a Slurm cluster (the local one of `make slurm-up`) through the launcher;
every test here is skipped, saying how to start one, when no Slurm controller answers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

HOW_TO_ENABLE = "start a local one with `make slurm-up` (installs slurm-wlm once, as root)"


@pytest.fixture(scope="session", autouse=True)
def slurm_cluster() -> None:
    """Skip unless `sinfo` reaches a Slurm controller and the submitit launcher is installed."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="needs the slurm extra")
    if shutil.which("sinfo") is None:
        pytest.skip(f"no Slurm on this machine (sinfo not found): {HOW_TO_ENABLE}")
    try:
        answer = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.skip(f"Slurm does not answer (sinfo timed out): {HOW_TO_ENABLE}")
    if answer.returncode != 0:
        first = (answer.stderr.strip().splitlines() or ["no output"])[0]
        pytest.skip(f"Slurm is not reachable (sinfo: {first}): {HOW_TO_ENABLE}")


@pytest.fixture(scope="session")
def job_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of the sweep and, through sbatch, of its jobs: caches in a temporary
    folder, offline, one thread (so runs in and out of Slurm compute alike)."""
    root = tmp_path_factory.mktemp("caches")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("HYDRA_FULL_ERROR", "SUBMITIT_PREEMPT_SIGNAL") and not k.startswith("SLURM_")
    }
    return {
        **env,
        "XFORMERS_LAB_CACHE": str(root / "xformers_lab"),
        "HF_DATASETS_CACHE": str(root / "datasets"),
        "HF_HUB_OFFLINE": "1",
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": "1",
    }


@pytest.fixture(scope="session")
def tiny(tiny: list[str]) -> list[str]:
    """The suite's tiny overrides (tests/conftest.py), on the CPU trainer whatever the default."""
    return ["trainer=cpu", *tiny]


@pytest.fixture(scope="session")
def sweep_command():
    """`python -m xformers_lab.train -m` through the Slurm launcher into `sweep_dir`, its jobs
    one at a time (this machine is small)."""

    def command(sweep_dir: Path, args: list[str]) -> list[str]:
        launcher = ["hydra/launcher=slurm", "hydra.launcher.array_parallelism=1"]
        sweep = [f"hydra.sweep.dir={sweep_dir}"]
        return [sys.executable, "-m", "xformers_lab.train", "-m", *launcher, *args, *sweep]

    return command


def slurm_job_id(run_dir: Path) -> str:
    """The Slurm job id of a sweep job, as the launcher recorded it when the job started."""
    return str(OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.job.id)


@pytest.fixture(scope="session")
def job_id():
    """The Slurm job id of a sweep job's run directory (written when the job starts)."""
    return slurm_job_id
