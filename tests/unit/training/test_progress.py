"""Progress (plain lines off a terminal, the rich bar on one) and the token metrics in the logs,
on a real Lightning loop over a toy regression module."""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from rich.console import Console
from torch.utils.data import DataLoader

from xformers_lab.training.progress import ProgressLines, RichStepBar, progress_callback
from xformers_lab.training.token_metrics import TokenMetrics
from xformers_lab.training.trainer import build_trainer
from xformers_lab.training.trainer_config import TrainerConfig

BATCH, SEQ = 4, 8


class Toy(L.LightningModule):
    """Fits a linear map; batches look like token batches (input_ids of shape (B, T))."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(SEQ, 1)

    def batch_tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["input_ids"].numel()

    def training_step(self, batch: dict[str, torch.Tensor], idx: int) -> torch.Tensor:
        loss = self.layer(batch["input_ids"].float()).pow(2).mean()
        self.log("train/loss", loss, on_step=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], idx: int) -> None:
        self.log("val/loss", self.layer(batch["input_ids"].float()).pow(2).mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=1e-3)


def _loader() -> DataLoader:
    rows = [{"input_ids": torch.randint(0, 9, (SEQ,))} for _ in range(16)]
    return DataLoader(rows, batch_size=BATCH)


def _fit(
    tmp_path: Path,
    progress_bar: bool,
    callbacks: list[L.Callback],
    accumulate: int = 1,
    max_steps: int = 12,
    ckpt_path: Path | None = None,
) -> Path:
    cfg = TrainerConfig(
        max_steps=max_steps, val_check_interval=6, limit_val_batches=2, log_every_n_steps=3,
        progress_bar=progress_bar, accumulate_grad_batches=accumulate,
    )  # fmt: skip
    trainer = build_trainer(
        cfg, tmp_path, loggers=[CSVLogger(tmp_path, name="logs", version="")], callbacks=callbacks
    )
    trainer.fit(Toy(), train_dataloaders=_loader(), val_dataloaders=_loader(), ckpt_path=ckpt_path)
    if ckpt_path is None:
        trainer.save_checkpoint(tmp_path / "last.ckpt")
    return tmp_path / "logs" / "metrics.csv"


@pytest.mark.parametrize("accumulate", [1, 2])
def test_plain_lines_every_logged_step_with_the_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], accumulate: int
) -> None:
    _fit(tmp_path, progress_bar=False, callbacks=[TokenMetrics()], accumulate=accumulate)
    lines = capsys.readouterr().err.splitlines()
    steps = [line for line in lines if line.startswith("step ")]
    assert [s.split()[1] for s in steps] == ["3/12", "6/12", "9/12", "12/12"]
    pattern = (
        r"step \d+/12 \(\d+%\)  loss \d+\.\d{4}  lr 1\.00e-03  [\d,]+ tok/s  elapsed \S+  eta \S+"
    )
    assert all(re.fullmatch(pattern, s) for s in steps), steps
    assert steps[-1].endswith("eta 0:00:00")
    validations = [line for line in lines if line.startswith("validation at step")]
    assert len(validations) == 2 and "loss " in validations[0]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_token_metrics_are_logged_with_the_train_rows(tmp_path: Path, accumulate: int) -> None:
    metrics = _fit(tmp_path, progress_bar=False, callbacks=[TokenMetrics()], accumulate=accumulate)
    train = [r for r in csv.DictReader(metrics.open()) if r["train/loss"]]
    assert [int(float(r["train/tokens_seen"])) for r in train] == [
        (int(r["step"]) + 1) * BATCH * SEQ * accumulate for r in train
    ]
    assert all(float(r["train/tokens_per_sec"]) > 0 for r in train)


def test_a_resumed_run_keeps_counting_tokens(tmp_path: Path) -> None:
    _fit(tmp_path / "first", progress_bar=False, callbacks=[TokenMetrics()], max_steps=6)
    resumed = TokenMetrics()
    metrics = _fit(tmp_path / "resumed", progress_bar=False, callbacks=[resumed],
                   ckpt_path=tmp_path / "first" / "last.ckpt")  # fmt: skip
    train = [r for r in csv.DictReader(metrics.open()) if r["train/loss"]]
    # after a resume Lightning writes other steps (8 and 11 here, labelled with the steps done);
    # each row still holds the tokens seen by its own step, counted on from the checkpoint
    assert [int(float(r["train/tokens_seen"])) for r in train] == [
        int(r["step"]) * BATCH * SEQ for r in train
    ]
    assert len(train) == 2 and int(train[0]["step"]) > 6
    assert resumed.tokens_seen == 12 * BATCH * SEQ


def test_rich_bar_counts_optimizer_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    bar = RichStepBar(refresh_every_n_steps=3, console=Console(file=out, force_terminal=True))
    monkeypatch.setattr("xformers_lab.training.trainer.progress_callback", lambda *args: bar)
    _fit(tmp_path, progress_bar=True, callbacks=[TokenMetrics()])
    text = out.getvalue()
    assert "12/12" in text and "tok/s" in text and "loss" in text
    assert "validation at step 6" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_only_on_a_terminal_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert isinstance(progress_callback(None, 10), ProgressLines)
    assert isinstance(progress_callback(True, 10), RichStepBar)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert isinstance(progress_callback(None, 10), RichStepBar)
    assert isinstance(progress_callback(False, 10), ProgressLines)
