"""Helpers to run the training command line, in a subprocess or in-process, and to read what
it logged."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TINY = [
    "model.n_layers=1",
    "model.d_model=32",
    "model.n_heads=2",
    "data.max_bytes=200000",
    "data.seq_len=32",
    "data.batch_size=8",
    "trainer.max_steps=30",
    "trainer.val_check_interval=15",
    "trainer.limit_val_batches=4",
    "trainer.log_every_n_steps=5",
    "scheduler.warmup_steps=3",
    "optim.lr=3e-3",
]


@pytest.fixture(scope="session", autouse=True)
def isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tokenizer and datasets caches in a temporary folder, for in-process and CLI runs alike."""
    root = tmp_path_factory.mktemp("caches")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XFORMERS_LAB_CACHE", str(root / "xformers_lab"))
        patch.setenv("HF_DATASETS_CACHE", str(root / "datasets"))
        yield


@pytest.fixture(scope="session")
def tiny() -> list[str]:
    """Overrides that make any preset train in seconds on a CPU."""
    return list(_TINY)


@pytest.fixture(scope="session")
def run_cli():
    """Runs `python -m <module> <args>` as a user would type it (HYDRA_FULL_ERROR unset)."""
    return _run_cli


def _run_cli(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def train_main(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Run `xformers_lab.train.main()` in-process with argv; returns the exit code."""
    from xformers_lab import train

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(args: list[str]) -> int:
        monkeypatch.setattr(sys, "argv", ["xformers_lab.train", *args])
        try:
            train.main()
        except SystemExit as exit_:
            return int(exit_.code or 0)
        return 0

    return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny: list[str]) -> Path:
    """One tiny GPT training run through the real command line, shared by the e2e tests."""
    root = tmp_path_factory.mktemp("cli")
    result = _run_cli("xformers_lab.train", [*tiny, f"hydra.run.dir={root / 'run'}"], cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "checkpoint:" in result.stdout and "summary:" in result.stdout
    return root / "run"


@pytest.fixture(scope="session")
def logged_train_losses():
    """Reads a run directory's `logs/metrics.csv` into {step: train loss}."""
    return _logged_train_losses


def _logged_train_losses(run_dir: Path) -> dict[int, float]:
    rows = csv.DictReader((run_dir / "logs" / "metrics.csv").open())
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}
