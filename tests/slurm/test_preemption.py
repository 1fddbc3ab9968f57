"""Preemption of a Slurm job: submitit's signal (USR2) mid-run checkpoints at a step boundary,
the job is requeued, resumes from that checkpoint in the same run directory, and ends where an
uninterrupted run of the same config ends, bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

STEPS = [  # long enough to be mid-run when the signal comes; exact (deterministic kernels)
    "trainer.max_steps=300",
    "trainer.val_check_interval=100",
    "trainer.log_every_n_steps=10",
    "trainer.checkpoint_every_n_steps=50",
    "trainer.deterministic=true",
]
PREEMPT_SIGNAL = "USR2"  # submitit's, with SUBMITIT_PREEMPT_SIGNAL unset


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear in {seconds} s"
        time.sleep(0.2)


def finish(process: subprocess.Popen[str], job: str, grace_s: float = 60) -> str:
    """Wait for the sweep to end; its stderr. Without Slurm accounting, submitit sees a job end
    only by its result file, so a job that ends without one (not requeued) fails here rather
    than leaving the sweep waiting."""
    gone_since = None
    while process.poll() is None:
        states = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True)
        if states.stdout.strip():
            gone_since = None
        elif gone_since is None:
            gone_since = time.monotonic()
        elif time.monotonic() - gone_since > grace_s:
            process.kill()
            pytest.fail(f"Slurm job {job} ended but the sweep still waits for its result")
        time.sleep(1)
    return process.communicate()[1]


def test_a_preempted_job_is_requeued_and_resumes_exactly(
    tmp_path: Path, tiny: list[str], job_env: dict[str, str], sweep_command, job_id
) -> None:
    overrides = [*tiny, *STEPS]
    plain = [sys.executable, "-m", "xformers_lab.train", *overrides]
    reference = run([*plain, f"hydra.run.dir={tmp_path / 'reference'}"], tmp_path, job_env)
    assert reference.returncode == 0, reference.stderr[-3000:]

    sweep = tmp_path / "multirun"
    process = subprocess.Popen(
        sweep_command(sweep, overrides),
        cwd=tmp_path,
        env=job_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    job = sweep / "0"
    try:
        wait_for(job / "checkpoints" / "step=50.ckpt", process)  # training is under way
        subprocess.run(["scancel", f"--signal={PREEMPT_SIGNAL}", job_id(job)], check=True)
        stderr = finish(process, job_id(job))
    finally:
        if process.poll() is None:
            process.kill()
            subprocess.run(["scancel", job_id(job)], check=False)
    assert process.returncode == 0, stderr[-3000:]

    (job_log,) = sweep.glob(".submitit/*/*_log.err")
    stopped = [line for line in job_log.read_text().splitlines() if "stopped by" in line]
    assert stopped and stopped[0].startswith("stopped by SIGUSR2 at step ")
    assert stopped[0].endswith(
        f"checkpoint {job / 'checkpoints' / 'last.ckpt'}; submitit requeues the job"
    )
    log = (job / "train.log").read_text()
    assert "Slurm requeued this job (SLURM_RESTART_COUNT=1): trainer.resume=auto" in log
    assert f"trainer.resume=auto: resuming from {job / 'checkpoints' / 'last.ckpt'}" in log
    resumed, uninterrupted = (
        json.loads((d / "summary.json").read_text()) for d in (job, tmp_path / "reference")
    )
    for key in ("steps", "final_train_loss", "final_val_loss", "best_val_loss"):
        assert resumed[key] == uninterrupted[key], key
