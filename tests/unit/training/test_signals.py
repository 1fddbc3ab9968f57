"""SIGTERM/SIGINT during training: a checkpoint at the next step boundary, then a clean stop."""

from __future__ import annotations

import os
import signal
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from xformers_lab.training.signals import StopAtStepBoundary, StopRequested


class SignalsItself(L.LightningModule):
    """Sends `signum` to its own process during the step `at` (mid-step, like a real signal)."""

    def __init__(self, signum: int, at: int, times: int = 1) -> None:
        super().__init__()
        self.layer = nn.Linear(2, 1)
        self.signum, self.at, self.times = signum, at, times

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        if self.global_step == self.at:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)
        return self.layer(batch).square().mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(tmp_path: Path, module: L.LightningModule) -> StopAtStepBoundary:
    stop = StopAtStepBoundary(tmp_path / "last.ckpt")
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=10,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[stop],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(torch.randn(64, 2), batch_size=4))
    return stop


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_at_the_step_boundary_and_stops(tmp_path: Path, signum: int) -> None:
    before = signal.getsignal(signum)
    with pytest.raises(StopRequested) as stopped:
        fit(tmp_path, SignalsItself(signum, at=3))
    assert stopped.value.step == 4  # the step in flight finished first
    assert stopped.value.exit_code == 128 + signum
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 4
    assert signal.getsignal(signum) == before  # handlers put back


def test_a_second_ctrl_c_stops_at_once(tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as exited:  # Lightning's shutdown on KeyboardInterrupt
        fit(tmp_path, SignalsItself(signal.SIGINT, at=3, times=2))
    assert exited.value.code == 1
    assert not (tmp_path / "last.ckpt").exists()
    signal.signal(signal.SIGINT, before)  # Lightning ignores SIGINT while it shuts down


def test_no_signal_no_checkpoint(tmp_path: Path) -> None:
    stop = fit(tmp_path, SignalsItself(signal.SIGTERM, at=-1))
    assert stop.requested is None and not (tmp_path / "last.ckpt").exists()
