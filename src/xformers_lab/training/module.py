"""The Lightning shell every objective trains in: optimiser and schedule, clipping, the loss
normalisation over accumulated micro-batches and ranks, validation sums, frozen helper models,
and the checkpoint payload. The objective (`tasks/objective.py`) only computes its summed loss
and its metrics."""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from xformers_lab.checkpoints import Payload, attach
from xformers_lab.tasks.objective import Objective
from xformers_lab.training.log_steps import written_this_step
from xformers_lab.training.optim import param_groups
from xformers_lab.training.parallel import compile_blocks, shard

OptimizerFactory = Callable[[list[dict[str, Any]]], torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
HALF_DTYPES = {"bf16-true": torch.bfloat16, "16-true": torch.float16}
"""Precisions that store weights in half precision: frozen helpers are cast to match."""
PREDICTIONS_FILE = "predictions.jsonl"
"""In the run dir: the generated validation examples of the best checkpoint's validation."""
PREDICTIONS_KEY = "best_prediction_score"
"""Training checkpoint entry: the tracked metric of the validation `predictions.jsonl` holds."""


class TrainingModule(L.LightningModule):
    """Trains one objective.

    The objective's submodules (`model`, and heads such as `classifier`) are registered as this
    module's own, so checkpoint keys are the objective's (`model.*`, `classifier.*`): `load()`
    rebuilds the objective alone from them. Its frozen helper models are placed on the device,
    cast under the `*-true` precisions and sharded under FSDP2 here, but never saved or trained.

    Args:
        objective: what to train.
        optimizer: Hydra partial taking parameter groups (AdamW by default).
        scheduler: Hydra partial taking (optimizer, total_steps=...), stepped every step.
        weight_decay: applied to weight matrices only (see `param_groups`).
        total_steps: length of the schedule (trainer.max_steps).
        run_config: the resolved Hydra config, stored in checkpoints for provenance.
        compile_blocks: `torch.compile` each block before training (`trainer.compile`).
    """

    def __init__(
        self,
        objective: Objective,
        *,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory,
        weight_decay: float,
        total_steps: int,
        run_config: dict[str, Any] | None = None,
        compile_blocks: bool = False,
    ) -> None:
        super().__init__()
        own = [*objective.parameters(recurse=False), *objective.buffers(recurse=False)]
        if own:
            raise ValueError(f"{type(objective).__name__} holds tensors outside its submodules")
        self.__dict__["objective"] = objective  # not a child: its children are ours below
        for name, child in objective.named_children():
            self.add_module(name, child)
        self._compile_blocks = compile_blocks
        self._configured = False
        self._optimizer_factory = optimizer
        self._scheduler_factory = scheduler
        self._weight_decay = weight_decay
        self._total_steps = total_steps
        self._run_config = run_config or {}
        self.recent_train_losses: deque[Tensor] = deque(maxlen=50)
        self._val_sums: dict[str, Tensor] = {}
        self._window: Tensor | None = None  # (nats, targets) summed since the last step
        self._loss_unit: int | None = None
        self._predictions: list[dict[str, Any]] = []
        self._best_score: float | None = None  # the tracked metric when predictions were kept
        self._generates = True  # off under FSDP (see configure_model)

    @property
    def name(self) -> str:
        return self.objective.name

    @property
    def tokenizer(self) -> Any:
        return self.objective.tokenizer

    @property
    def model_config(self) -> Any:
        return self.objective.model_config

    def train(self, mode: bool = True) -> TrainingModule:
        super().train(mode)
        objective = self.__dict__.get("objective")
        if objective is not None:  # its children follow through us; it has its own flag
            objective.training = mode
        return self

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.objective(*args, **kwargs)

    def configure_model(self) -> None:
        """Compile, then shard under `trainer.strategy=fsdp` (torchtitan's order): the model, a
        task's own head, and the frozen helpers. Once, although Lightning calls this hook again
        for a validation after `fit`."""
        if self._configured:
            return
        self._configured = True
        if self._compile_blocks:
            compile_blocks(self.model)
        if self.device_mesh is not None:
            if self.objective.prediction_budget() > 0:
                self._generates = False
                rank_zero_warn(
                    "generation-based validation is off under trainer.strategy=fsdp (ranks would "
                    "decode different lengths on sharded weights); val/loss is still reported"
                )
            for module in self.children():
                if any(p.requires_grad for p in module.parameters()):
                    shard(module, self.device_mesh, str(self.trainer.precision))
            for helper in self.objective.helpers.values():
                shard(helper, self.device_mesh, str(self.trainer.precision))

    def on_fit_start(self) -> None:
        """Place the helpers like the model (FSDP2 placed sharded ones), then say what the
        objective advises for this precision."""
        precision = str(self.trainer.precision)
        for helper in self.objective.helpers.values():
            if self.device_mesh is None:
                helper.to(device=self.device, dtype=HALF_DTYPES.get(precision))
        for message in self.objective.fit_warnings(precision):
            rank_zero_warn(message)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self._optimizer_factory(param_groups(self, self._weight_decay))
        scheduler = self._scheduler_factory(optimizer, total_steps=self._total_steps)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1},
        }

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clip the global norm directly: Lightning's mixed-precision plugin refuses any fused
        optimizer, though only loss scaling makes that wrong, and under 16-mixed the optimizer
        is not fused (`training.run.optimizer_factory`)."""
        if gradient_clip_val:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    def batch_tokens(self, batch: dict[str, Tensor]) -> int:
        """Tokens this batch trains on, from its shape (no device sync)."""
        return self.objective.batch_tokens(batch)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Backpropagate the summed loss over a fixed unit; `on_before_optimizer_step` turns the
        accumulated gradients into those of the mean over every target of the step.

        A mean per micro-batch (what Lightning's accumulation averages) weighs a target of a
        micro-batch with few targets (MLM, padded or span rows) more than one of a full
        micro-batch, so k accumulated micro-batches would not equal one batch k times larger,
        nor would ranks equal one process. Summing, then dividing once by the step's total
        count, makes both exact. The unit (target slots per micro-batch, from the shape) only
        keeps the backward pass at the usual magnitude, which matters for fp16 loss scaling.
        """
        nats, targets, slots = self.objective.summed_loss(batch)
        counted = torch.stack([nats.detach().double(), targets.double()])
        self._window = counted if self._window is None else self._window + counted
        if self._loss_unit is None:
            self._loss_unit = max(slots, 1)
        return nats / self._loss_unit

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Rescale the step's gradients to the mean over all its targets (every micro-batch, every
        rank) and log that mean as the step's loss. One all-reduce of two numbers per step with
        several ranks; no host sync."""
        if self._window is None or self._loss_unit is None:
            return
        nats, targets = self.trainer.strategy.reduce(self._window, reduce_op="sum")
        self._window = None
        targets = targets.clamp(min=1)
        # Lightning divided each micro-batch's loss by accumulate_grad_batches, and DDP/FSDP
        # average gradients over ranks: undo both, then divide by the real count.
        scale = self.trainer.accumulate_grad_batches * self.trainer.world_size * self._loss_unit
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, (scale / targets).to(grads[0].dtype))
        self.log_train_loss((nats / targets).float())

    def log_train_loss(self, loss: Tensor) -> None:
        """Keep a short on-device window of step losses for the final summary (no sync), and log
        the loss and learning rate on the steps the loggers write."""
        self.recent_train_losses.append(loss.detach())
        if written_this_step(self.trainer):
            self.log("train/loss", loss, on_step=True, prog_bar=True)
            self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Add the batch's sums (nats, tokens, bytes, ...) on device; reduced once per epoch.
        Objectives that generate also complete this rank's share of `prediction_budget()`
        examples."""
        for key, value in self.objective.validation_sums(batch).items():
            value = value.detach().double()
            self._val_sums[key] = self._val_sums[key] + value if key in self._val_sums else value
        wanted = self._prediction_quota() - len(self._predictions)
        if wanted > 0:
            self._predictions += self.objective.predict(batch, wanted)

    def on_validation_epoch_start(self) -> None:
        self._val_sums = {}
        self._predictions = []

    def on_validation_epoch_end(self) -> None:
        if not self._val_sums:
            return
        totals = {
            k: self.trainer.strategy.reduce(v, reduce_op="sum") for k, v in self._val_sums.items()
        }
        metrics = {name: float(v) for name, v in self.objective.metrics(totals).items()}
        records = self._gathered_predictions()
        if records:
            metrics.update(self.objective.prediction_metrics(records))
        for name, value in metrics.items():
            self.log(f"val/{name}", value, sync_dist=False)
        if records:
            self._keep_predictions(records, metrics.get(self.objective.best.metric))

    def _prediction_quota(self) -> int:
        """This rank's share of the examples to generate at this validation."""
        budget = self.objective.prediction_budget()
        if budget <= 0 or not self._generates or self.trainer.sanity_checking:
            return 0
        return math.ceil(budget / self.trainer.world_size)

    def _gathered_predictions(self) -> list[dict[str, Any]]:
        """Every rank's records, in rank order (the same list on every rank)."""
        if self.trainer.world_size == 1 or not torch.distributed.is_initialized():
            return self._predictions
        gathered: list[Any] = [None] * self.trainer.world_size
        torch.distributed.all_gather_object(gathered, self._predictions)
        return [record for part in gathered for record in part]

    def _keep_predictions(self, records: list[dict[str, Any]], score: float | None) -> None:
        """Write `predictions.jsonl` when this validation beats the best so far on the tracked
        metric, as `best.ckpt` does (strictly better; while fitting only: a validation after
        training saves no checkpoint)."""
        if score is None or math.isnan(score) or self.trainer.state.fn != "fit":
            return
        if self._best_score is not None and not self.objective.best.better(score, self._best_score):
            return
        self._best_score = score
        if self.trainer.is_global_zero:
            path = Path(self.trainer.default_root_dir) / PREDICTIONS_FILE
            tmp = path.with_name(f".{path.name}.tmp")
            with tmp.open("w") as out:
                step = self.trainer.global_step
                for record in records:
                    out.write(json.dumps({"step": step, **record}, ensure_ascii=False) + "\n")
            os.replace(tmp, path)

    def final_train_loss(self) -> float | None:
        """Mean loss of the last steps: a steadier figure than the very last step."""
        if not self.recent_train_losses:
            return None
        return torch.stack(list(self.recent_train_losses)).float().mean().item()

    def payload(self) -> Payload:
        """What `load()` needs besides the weights."""
        return Payload(
            task=self.objective.name,
            model_config=self.objective.model_config,
            tokenizer=self.objective.tokenizer.state_dict(),
            head=self.objective.head_config(),
            config=self._run_config,
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        attach(checkpoint, self.payload())
        checkpoint[PREDICTIONS_KEY] = self._best_score

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """A resumed run keeps `predictions.jsonl` unless it does better."""
        self._best_score = checkpoint.get(PREDICTIONS_KEY)
