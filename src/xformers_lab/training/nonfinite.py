"""`trainer.nonfinite`: what a run does when a step's loss or gradient is NaN or infinite."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from xformers_lab.checkpoints import read_file
from xformers_lab.errors import UserError
from xformers_lab.training.resume import newest_good_checkpoint

log = logging.getLogger(__name__)


class NonFiniteGuard(L.Callback):
    """Checks every optimizer step's loss and gradient norm before the update, then applies the
    policy on a non-finite one:

    - `stop`: end the run with one line naming the step.
    - `skip`: drop the step's gradients, so the optimizer leaves weights and moments as they are
      (the schedule still advances); count it and log `train/skipped_steps`.
    - `rollback`: put the weights and optimizer state of the newest good checkpoint in
      `checkpoint_dir` back, drop the step, and multiply the learning rate (schedule included)
      by `lr_factor`. The step counter and the data go on: the batches since that checkpoint are
      not replayed, so the offending ones are skipped.

    More than `max_consecutive` non-finite steps in a row stop the run under any policy.

    The check costs one boolean read on the host per optimizer step (the loss flags and the
    gradient norm are reduced on the device first): free on CPU, the same sync as fp16's
    GradScaler on GPU. With a GradScaler (16-mixed) overflowing gradients are the scaler's
    business, so only the loss is checked.
    """

    def __init__(
        self, policy: str, max_consecutive: int, lr_factor: float, checkpoint_dir: Path
    ) -> None:
        self.policy = policy
        self.max_consecutive = max_consecutive
        self.lr_factor = lr_factor
        self.checkpoint_dir = checkpoint_dir
        self.skipped = 0
        self.rollbacks = 0
        self._consecutive = 0
        self._loss_bad: Tensor | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped, "rollbacks": self.rollbacks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped, self.rollbacks = state_dict["skipped"], state_dict["rollbacks"]

    def on_before_backward(
        self, trainer: L.Trainer, module: L.LightningModule, loss: Tensor
    ) -> None:
        bad = ~torch.isfinite(loss.detach())
        self._loss_bad = bad if self._loss_bad is None else self._loss_bad | bad

    def on_before_optimizer_step(
        self, trainer: L.Trainer, module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        bad = self._loss_bad
        self._loss_bad = None
        if getattr(trainer.precision_plugin, "scaler", None) is None:
            grads = [p.grad for p in module.parameters() if p.grad is not None]
            if grads:
                grad_bad = ~torch.isfinite(torch.nn.utils.get_total_norm(grads))
                bad = grad_bad if bad is None else bad | grad_bad
        if bad is None or not bool(bad):  # the one host read per step
            self._consecutive = 0
            return
        self._on_nonfinite(trainer, module, optimizer)

    def _on_nonfinite(
        self, trainer: L.Trainer, module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        step = trainer.global_step
        self._consecutive += 1
        if self.policy == "stop":
            raise UserError(
                f"non-finite loss or gradient at step {step} (trainer.nonfinite=stop); lower "
                "optim.lr, or set trainer.nonfinite=skip or rollback to continue past it"
            )
        if self._consecutive > self.max_consecutive:
            raise UserError(
                f"non-finite loss or gradient at step {step}, {self._consecutive} steps in a row "
                f"(trainer.nonfinite_max_consecutive={self.max_consecutive}); lower optim.lr"
            )
        if self.policy == "rollback":
            self._rollback(trainer, module, optimizer, step)
        for param in module.parameters():
            param.grad = None  # the optimizer skips parameters without a gradient
        self.skipped += 1
        log.warning(
            "non-finite loss or gradient at step %d: batch skipped (%d so far)", step, self.skipped
        )
        module.log("train/skipped_steps", float(self.skipped), on_step=True, on_epoch=False)

    def _rollback(
        self,
        trainer: L.Trainer,
        module: L.LightningModule,
        optimizer: torch.optim.Optimizer,
        step: int,
    ) -> None:
        path = newest_good_checkpoint(self.checkpoint_dir)
        if path is None:
            raise UserError(
                f"non-finite loss or gradient at step {step} and no checkpoint in "
                f"{self.checkpoint_dir} to roll back to (trainer.nonfinite=rollback); set "
                "trainer.checkpoint_every_n_steps, or use trainer.nonfinite=skip"
            )
        checkpoint = read_file(path, cache=False)
        module.load_state_dict(checkpoint["state_dict"])
        optimizer.load_state_dict(checkpoint["optimizer_states"][0])
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            scheduler.base_lrs = [lr * self.lr_factor for lr in scheduler.base_lrs]  # type: ignore[union-attr]
        for group in optimizer.param_groups:
            group["lr"] *= self.lr_factor
        self.rollbacks += 1
        log.warning(
            "rolled back to %s (step %d) after a non-finite step at %d; learning rate x%g",
            path,
            checkpoint["global_step"],
            step,
            self.lr_factor**self.rollbacks,
        )
