"""Exact resume through the real command line: a run killed (SIGKILL) after a checkpoint, or
stopped (SIGTERM), then resumed, logs the same per-step train losses as an uninterrupted run,
bit for bit, for each family."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

FAMILIES = {
    "clm": ["model=gpt", "task=clm"],
    "mlm": ["model=bert", "task=mlm"],
    "span": ["model=t5", "task=span"],
}
STEPS, EVERY = 40, 10
_RUN = [
    f"trainer.max_steps={STEPS}",
    f"trainer.checkpoint_every_n_steps={EVERY}",
    "trainer.val_check_interval=10",  # validations on checkpoint steps: must not shift the RNG
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.deterministic=true",
    "model.dropout=0.1",  # dropout draws from the RNG: its state must be restored too
]


def command(family: str, tiny: list[str], run_dir: Path) -> list[str]:
    args = [*FAMILIES[family], *tiny, *_RUN, f"hydra.run.dir={run_dir}"]
    return [sys.executable, "-m", "xformers_lab.train", *args]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return {**env, "OMP_NUM_THREADS": "1"}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=environment(), capture_output=True, text=True, timeout=600, check=False
    )


def interrupt_after_checkpoint(args: list[str], cwd: Path, signum: int, step: int) -> str:
    """Start `args`, send `signum` once `step=<step>.ckpt` exists; returns its stderr."""
    run_dir = Path(args[-1].removeprefix("hydra.run.dir="))
    wanted = run_dir / "checkpoints" / f"step={step}.ckpt"
    process = subprocess.Popen(
        args, cwd=cwd, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while not wanted.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=300)
    expected = -signum if signum == signal.SIGKILL else 128 + signum
    assert process.returncode == expected, stderr[-3000:]  # stopped mid-run, not finished
    return stderr


def saved_checkpoints(directory: Path) -> list[tuple[int, float, Path]]:
    """Every checkpoint the killed run left: each one complete (a write cut short by the kill
    is a hidden temporary file, which resume=auto removes)."""
    return [
        (torch.load(p, weights_only=True, mmap=True)["global_step"], p.stat().st_mtime, p)
        for p in directory.glob("*.ckpt")
    ]


def train_losses(run_dir: Path) -> dict[int, str]:
    """Step -> train loss as logged (the last row of a step wins: the resumed run's)."""
    rows = csv.DictReader((run_dir / "logs" / "metrics.csv").open())
    return {int(r["step"]): r["train/loss"] for r in rows if r.get("train/loss")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, tiny: list[str]):
    """Uninterrupted runs, one per family, made on first use; returns the run dir."""
    root = tmp_path_factory.mktemp("reference")

    def get(family: str) -> Path:
        if not (root / family / "summary.json").exists():
            result = run(command(family, tiny, root / family), root)
            assert result.returncode == 0, result.stderr[-3000:]
            assert sorted(train_losses(root / family)) == list(range(STEPS))
        return root / family

    return get


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_sigkill_then_resume_auto_matches_an_uninterrupted_run(
    family: str, tiny: list[str], tmp_path: Path, reference
) -> None:
    args = command(family, tiny, tmp_path / "run")
    kill_at = 2 * EVERY if family == "clm" else EVERY  # clm: leave two to truncate one
    interrupt_after_checkpoint(args, tmp_path, signal.SIGKILL, kill_at)
    checkpoints = tmp_path / "run" / "checkpoints"
    saved = sorted(saved_checkpoints(checkpoints))  # (step, mtime, path), newest last
    if family == "clm":  # the newest one truncated: named, skipped, the next one used instead
        broken = saved.pop()[2]
        broken.write_bytes(broken.read_bytes()[:5000])
    saved_at, _, chosen = saved[-1]
    result = run([*args, "trainer.resume=auto"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert f"trainer.resume=auto: resuming from {chosen}" in output
    assert not list(checkpoints.glob(".*.tmp"))
    if family == "clm":
        assert f"checkpoint {broken} is corrupt or truncated" in output
        assert f"falling back to {chosen} (step {saved_at})" in output
    resumed = train_losses(tmp_path / "run")
    assert min(resumed) == saved_at and max(resumed) == STEPS - 1
    expected = train_losses(reference(family))
    assert {step: expected[step] for step in resumed} == resumed


def test_a_finished_run_exports_its_weights_to_safetensors(tiny_run: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(tiny_run / "checkpoints" / "model.safetensors"), "pt") as f:
        assert f.metadata()["task"] == "clm" and len(list(f.keys())) > 0


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(
    tiny: list[str], tmp_path: Path, reference
) -> None:
    args = command("clm", tiny, tmp_path / "run")
    stderr = interrupt_after_checkpoint(args, tmp_path, signal.SIGTERM, EVERY)
    (message,) = [line for line in stderr.splitlines() if "stopped by SIGTERM" in line]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    step = torch.load(last, weights_only=True, mmap=True)["global_step"]
    assert f"stopped by SIGTERM at step {step}: checkpoint {last}; resume with: " in message
    assert "Traceback" not in stderr and not (tmp_path / "run" / "summary.json").exists()
    resume = shlex.split(message.partition("resume with: ")[2])
    assert resume[:3] == ["python", "-m", "xformers_lab.train"]
    assert resume[-2:] == [f"hydra.run.dir={tmp_path / 'run'}", "trainer.resume=auto"]
    result = run([sys.executable, *resume[1:]], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = {s: loss for s, loss in train_losses(tmp_path / "run").items() if s >= step}
    assert sorted(resumed) == list(range(step, STEPS))
    expected = train_losses(reference("clm"))
    assert {s: expected[s] for s in resumed} == resumed
    summary, uninterrupted = (
        json.loads((d / "summary.json").read_text()) for d in (tmp_path / "run", reference("clm"))
    )
    for key in ("steps", "tokens_seen", "best_val_loss", "best_val_step", "final_val_loss"):
        assert summary[key] == uninterrupted[key], key  # the summary counts the whole run
