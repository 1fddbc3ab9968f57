"""Per-step learning-rate schedules: linear warmup, then cosine decay or a constant rate.

Each schedule is a `LambdaLR` driven by a small dataclass per param group rather than a closure,
so `scheduler.state_dict()` holds plain ints and floats (it loads with `weights_only=True`) and a
resumed run continues the same curve. Both builders take the same keywords, so a config can
switch `scheduler: warmup_cosine` to `scheduler: constant` without other edits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


@dataclass(frozen=True)
class WarmupCosine:
    """nanoGPT's `get_lr` as a multiplier of the base lr: warmup to 1, cosine down to `floor`."""

    total_steps: int
    warmup_steps: int
    floor: float
    """`min_lr / base_lr` of the group this multiplier drives."""

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if step >= self.total_steps:
            return self.floor
        progress = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
        return self.floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (1.0 - self.floor)


@dataclass(frozen=True)
class WarmupConstant:
    """Warmup to 1 exactly as `WarmupCosine` does, then stay there."""

    warmup_steps: int

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        return 1.0


def warmup_cosine(
    optimizer: Optimizer, *, total_steps: int, warmup_steps: int, min_lr: float
) -> LambdaLR:
    """Linear warmup over `warmup_steps`, cosine decay to the absolute `min_lr` at `total_steps`.

    Step `it` (the optimizer step about to run) gets `lr * (it + 1) / (warmup_steps + 1)` during
    warmup, the cosine between `lr` and `min_lr` until `total_steps`, and `min_lr` after; `lr` is
    each param group's own base rate. Step the scheduler once per optimizer step.
    """
    base_lrs = _validated_base_lrs(optimizer, total_steps, warmup_steps, min_lr)
    multipliers = [
        WarmupCosine(total_steps, warmup_steps, min_lr / lr if lr > 0 else 0.0) for lr in base_lrs
    ]
    return LambdaLR(optimizer, multipliers)


def constant(
    optimizer: Optimizer, *, total_steps: int, warmup_steps: int = 0, min_lr: float = 0.0
) -> LambdaLR:
    """Linear warmup over `warmup_steps`, then each group's base lr for good.

    `total_steps` and `min_lr` are unused by the curve but validated like `warmup_cosine`'s, so
    the two schedules are interchangeable in a config.
    """
    _validated_base_lrs(optimizer, total_steps, warmup_steps, min_lr)
    return LambdaLR(optimizer, [WarmupConstant(warmup_steps) for _ in optimizer.param_groups])


def _validated_base_lrs(
    optimizer: Optimizer, total_steps: int, warmup_steps: int, min_lr: float
) -> list[float]:
    """The groups' base lrs (as LambdaLR will see them), once the arguments are known to be sane."""
    if total_steps <= 0:
        raise ValueError(f"scheduler total_steps must be positive, got {total_steps}")
    if warmup_steps < 0:
        raise ValueError(f"scheduler warmup_steps must be >= 0, got {warmup_steps}")
    if warmup_steps > total_steps:
        raise ValueError(
            f"scheduler warmup_steps ({warmup_steps}) must not exceed total_steps ({total_steps})"
        )
    if min_lr < 0:
        raise ValueError(f"scheduler min_lr must be >= 0, got {min_lr}")
    base_lrs = [float(group.get("initial_lr", group["lr"])) for group in optimizer.param_groups]
    for index, lr in enumerate(base_lrs):
        if min_lr > lr:
            raise ValueError(
                f"scheduler min_lr ({min_lr}) must not exceed the lr ({lr}) of param group {index}"
            )
    return base_lrs
