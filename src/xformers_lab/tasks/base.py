"""What every objective shares: the model, optimiser and schedule, token accounting, the loss
normalisation over accumulated micro-batches and ranks, and the self-contained checkpoint
payload. A task subclass only computes its summed loss and its metrics."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import Tensor

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.data.collators import IGNORE_INDEX
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.training.optim import param_groups
from xformers_lab.training.parallel import compile_blocks, shard

CHECKPOINT_KEY = "xformers_lab"
"""Checkpoint entry holding everything needed to rebuild the run's model and tokenizer."""

OptimizerFactory = Callable[[list[dict[str, Any]]], torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


class LanguageModelTask(L.LightningModule):
    """Base LightningModule of all objectives.

    Args:
        model_config: architecture; the model is built from it and saved with the checkpoint.
        tokenizer: travels inside the checkpoint; its `token_bytes` turn nats into bits per byte.
        optimizer: Hydra partial taking parameter groups (AdamW by default).
        scheduler: Hydra partial taking (optimizer, total_steps=...), stepped every step.
        weight_decay: applied to weight matrices only (see `param_groups`).
        total_steps: length of the schedule (trainer.max_steps).
        run_config: the resolved Hydra config, stored in checkpoints for provenance.
        options: the objective's typed options (its `TaskSpec.options` dataclass).
        compile_blocks: `torch.compile` each block before training (`trainer.compile`).
    """

    name: str = ""

    def __init__(
        self,
        *,
        model_config: TransformerConfig,
        tokenizer: Tokenizer,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory,
        weight_decay: float,
        total_steps: int,
        run_config: dict[str, Any] | None = None,
        options: Any = None,
        compile_blocks: bool = False,
    ) -> None:
        super().__init__()
        self.options = options
        self._compile_blocks = compile_blocks
        self._configured = False
        self.model_config = model_config
        self.tokenizer = tokenizer
        self.model = build_model(model_config)
        self._optimizer_factory = optimizer
        self._scheduler_factory = scheduler
        self._weight_decay = weight_decay
        self._total_steps = total_steps
        self._run_config = run_config or {}
        token_bytes = torch.tensor(tokenizer.token_bytes(), dtype=torch.long)
        self.register_buffer("token_bytes", token_bytes, persistent=False)
        self.recent_train_losses: deque[Tensor] = deque(maxlen=50)
        self._val_sums: dict[str, Tensor] = {}
        self._window: Tensor | None = None  # (nats, targets) summed since the last step
        self._loss_unit: int | None = None

    def configure_model(self) -> None:
        """Compile, then shard under `trainer.strategy=fsdp` (torchtitan's order); once, although
        Lightning calls this hook again for a validation after `fit`."""
        if self._configured:
            return
        self._configured = True
        if self._compile_blocks:
            compile_blocks(self.model)
        if self.device_mesh is not None:  # the model, and a task's own head (classification)
            for module in self.children():
                if any(p.requires_grad for p in module.parameters()):
                    shard(module, self.device_mesh, str(self.trainer.precision))

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
        is not fused (`train.optimizer_factory`)."""
        if gradient_clip_val:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    def batch_tokens(self, batch: dict[str, Tensor]) -> int:
        """Tokens this batch trains on, from its shape (no device sync)."""
        return batch["input_ids"].numel()

    def train_nats(self, batch: dict[str, Tensor]) -> Tensor:
        """Summed cross-entropy (nats) of the batch's targets; each objective defines it."""
        raise NotImplementedError

    def train_targets(self, batch: dict[str, Tensor]) -> Tensor:
        """How many targets `train_nats` sums over: the labels that are not ignored."""
        return (batch["labels"] != IGNORE_INDEX).sum()

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Backpropagate the summed loss over a fixed unit; `on_before_optimizer_step` turns the
        accumulated gradients into those of the mean over every target of the step.

        A mean per micro-batch (what Lightning's accumulation averages) weighs a target of a
        micro-batch with few targets (MLM, padded or span rows) more than one of a full
        micro-batch, so k accumulated micro-batches would not equal one batch k times larger,
        nor would ranks equal one process. Summing, then dividing once by the step's total
        count, makes both exact. The unit (labels per micro-batch, from the shape) only keeps
        the backward pass at the usual magnitude, which matters for fp16 loss scaling.
        """
        nats, targets = self.train_nats(batch), self.train_targets(batch)
        counted = torch.stack([nats.detach().double(), targets.double()])
        self._window = counted if self._window is None else self._window + counted
        if self._loss_unit is None:
            self._loss_unit = batch["labels"].numel()
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
        """Log the step loss and learning rate; keep a short on-device window of losses for the
        final summary (no sync)."""
        self.recent_train_losses.append(loss.detach())
        self.log("train/loss", loss, on_step=True, prog_bar=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True)

    def accumulate_val(self, **sums: Tensor) -> None:
        """Add per-batch sums (nats, tokens, bytes, ...) on device; reduced once per epoch."""
        for key, value in sums.items():
            value = value.detach().double()
            self._val_sums[key] = self._val_sums[key] + value if key in self._val_sums else value

    def on_validation_epoch_start(self) -> None:
        self._val_sums = {}

    def on_validation_epoch_end(self) -> None:
        if not self._val_sums:
            return
        totals = {
            k: self.trainer.strategy.reduce(v, reduce_op="sum") for k, v in self._val_sums.items()
        }
        for name, value in self.val_metrics(totals).items():
            self.log(f"val/{name}", value, sync_dist=False)

    def val_metrics(self, totals: dict[str, Tensor]) -> dict[str, Tensor]:
        """Turn the epoch's summed counters into metrics; the base knows the language-model ones."""
        loss = totals["nats"] / totals["tokens"]
        metrics = {"loss": loss.float(), "ppl": loss.exp().float()}
        if "byte_nats" in totals:
            bits = totals["byte_nats"] / math.log(2)
            metrics["bpb"] = (bits / totals["bytes"].clamp(min=1)).float()
        return metrics

    def byte_sums(self, token_losses: Tensor, targets: Tensor) -> dict[str, Tensor]:
        """Nats and UTF-8 bytes of the targets that stand for text (special tokens excluded)."""
        n_bytes = self.token_bytes[targets]
        return {"byte_nats": (token_losses * (n_bytes > 0)).sum(), "bytes": n_bytes.sum()}

    def final_train_loss(self) -> float | None:
        """Mean loss of the last steps: a steadier figure than the very last step."""
        if not self.recent_train_losses:
            return None
        return torch.stack(list(self.recent_train_losses)).float().mean().item()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "format": 1,
            "task": self.name,
            "model_config": self.model_config.to_dict(),
            "tokenizer": self.tokenizer.state_dict(),
            "config": self._run_config,
        }
