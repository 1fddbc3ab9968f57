"""`trainer.nonfinite`: an injected NaN loss stops the run, skips the step, or rolls back to the
last checkpoint with a lower learning rate."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from xformers_lab.errors import UserError
from xformers_lab.training.nonfinite import NonFiniteGuard

LR = 0.1


class Regression(L.LightningModule):
    """A linear model whose loss is NaN at the steps in `nan_steps`; records its weights after
    every step."""

    def __init__(self, nan_steps: set[int]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(4, 1)
        self.nan_steps = nan_steps
        self.weights_after: dict[int, torch.Tensor] = {}

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = (self.layer(batch) - 1.0).square().mean()
        if self.global_step in self.nan_steps:
            loss = loss * float("nan")
        return loss

    def on_train_batch_end(self, outputs: object, batch: object, batch_idx: int) -> None:
        self.weights_after[self.global_step - 1] = self.layer.weight.detach().clone()

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.AdamW(self.parameters(), lr=LR)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def fit(
    tmp_path: Path, policy: str, nan_steps: set[int], steps: int = 6, max_consecutive: int = 3
) -> tuple[Regression, NonFiniteGuard, L.Trainer]:
    module = Regression(nan_steps)
    guard = NonFiniteGuard(policy, max_consecutive, 0.5, tmp_path)
    saver = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=2, save_top_k=-1)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[guard, saver],
        default_root_dir=tmp_path,
    )
    data = DataLoader(torch.randn(64, 4), batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, data)
    return module, guard, trainer


def test_stop_names_the_step(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"non-finite loss or gradient at step 3 \("):
        fit(tmp_path, "stop", {3})


def test_skip_leaves_weights_and_moments_alone(tmp_path: Path) -> None:
    module, guard, trainer = fit(tmp_path, "skip", {3})
    after = module.weights_after
    assert torch.equal(after[3], after[2])  # the NaN step changed nothing
    assert not torch.equal(after[4], after[3])  # training went on
    assert torch.isfinite(after[5]).all()
    assert guard.skipped == 1 and trainer.global_step == 6
    optimizer = trainer.optimizers[0]
    assert optimizer.state[module.layer.weight]["step"] == 5  # one update fewer than steps


def test_skip_stops_after_too_many_in_a_row(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"at step 4, 4 steps in a row"):
        fit(tmp_path, "skip", {1, 2, 3, 4, 5}, max_consecutive=3)


def test_rollback_restores_the_last_checkpoint_and_lowers_the_lr(tmp_path: Path) -> None:
    module, guard, trainer = fit(tmp_path, "rollback", {5})
    saved = torch.load(tmp_path / "epoch=0-step=4.ckpt", weights_only=True)
    assert torch.equal(module.weights_after[5], saved["state_dict"]["layer.weight"])
    assert torch.equal(module.weights_after[3], saved["state_dict"]["layer.weight"])
    assert guard.rollbacks == 1 and guard.skipped == 1
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.base_lrs == [LR * 0.5]
    assert trainer.optimizers[0].param_groups[0]["lr"] == LR * 0.5


def test_rollback_without_a_checkpoint_stops(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no checkpoint .* to roll back to"):
        fit(tmp_path, "rollback", {1})


def test_gradients_are_checked_too(tmp_path: Path) -> None:
    class InfGradient(Regression):
        def on_after_backward(self) -> None:
            if self.global_step == 2:
                self.layer.bias.grad.fill_(float("inf"))

    module = InfGradient(set())
    guard = NonFiniteGuard("stop", 3, 0.5, tmp_path)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=4,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[guard],
    )
    with pytest.raises(UserError, match="at step 2"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(torch.randn(64, 4), batch_size=4))
