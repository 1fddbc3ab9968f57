"""Learning-rate schedules: nanoGPT's curve step for step, per-group floors, resumable state."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR

from xformers_lab.training.schedules import constant, warmup_cosine

LR, MIN_LR, WARMUP, TOTAL = 6e-4, 6e-5, 10, 50


def nanogpt_get_lr(it: int) -> float:
    """nanoGPT's `train.py:get_lr`, verbatim but for the names."""
    if it < WARMUP:
        return LR * (it + 1) / (WARMUP + 1)
    if it > TOTAL:
        return MIN_LR
    decay_ratio = (it - WARMUP) / (TOTAL - WARMUP)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return MIN_LR + coeff * (LR - MIN_LR)


def _optimizer(*lrs: float) -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.AdamW(groups)


def _trace(scheduler: LambdaLR, steps: int) -> list[list[float]]:
    """The lr each group trains with at steps 0..steps-1, stepping as Lightning does."""
    trace = []
    for _ in range(steps):
        trace.append([group["lr"] for group in scheduler.optimizer.param_groups])
        scheduler.optimizer.step()
        scheduler.step()
    return trace


def test_warmup_cosine_matches_nanogpt_table() -> None:
    scheduler = warmup_cosine(_optimizer(LR), total_steps=TOTAL, warmup_steps=WARMUP, min_lr=MIN_LR)
    got = [lrs[0] for lrs in _trace(scheduler, TOTAL + 10)]
    assert got == pytest.approx([nanogpt_get_lr(it) for it in range(TOTAL + 10)], rel=1e-12)
    anchors = {0: LR / 11, 9: LR * 10 / 11, 10: LR, 30: (LR + MIN_LR) / 2, 50: MIN_LR, 59: MIN_LR}
    assert {it: got[it] for it in anchors} == pytest.approx(anchors, rel=1e-12)


def test_warmup_cosine_floors_every_group_at_the_absolute_min_lr() -> None:
    optimizer = _optimizer(LR, LR / 3)
    scheduler = warmup_cosine(optimizer, total_steps=TOTAL, warmup_steps=WARMUP, min_lr=MIN_LR)
    trace = _trace(scheduler, TOTAL + 2)
    assert trace[0] == pytest.approx([LR / 11, LR / 33])
    assert trace[WARMUP] == pytest.approx([LR, LR / 3])
    assert trace[TOTAL] == trace[TOTAL + 1] == pytest.approx([MIN_LR, MIN_LR])


@pytest.mark.parametrize(("warmup", "first"), [(0, LR), (WARMUP, MIN_LR)])
def test_warmup_cosine_edges(warmup: int, first: float) -> None:
    """No warmup starts at the full lr; warmup == total jumps to min_lr once warmup ends."""
    total = WARMUP
    scheduler = warmup_cosine(_optimizer(LR), total_steps=total, warmup_steps=warmup, min_lr=MIN_LR)
    trace = [lrs[0] for lrs in _trace(scheduler, total + 2)]
    assert trace[0 if warmup == 0 else warmup] == pytest.approx(first)
    assert trace[-1] == pytest.approx(MIN_LR)


def test_constant_warms_up_like_warmup_cosine_then_stays() -> None:
    scheduler = constant(_optimizer(LR, LR / 2), total_steps=TOTAL, warmup_steps=WARMUP)
    trace = _trace(scheduler, TOTAL + 5)
    for it in range(WARMUP):
        assert trace[it] == pytest.approx([nanogpt_get_lr(it), nanogpt_get_lr(it) / 2])
    assert all(lrs == pytest.approx([LR, LR / 2]) for lrs in trace[WARMUP:])


@pytest.mark.parametrize("build", [warmup_cosine, constant])
def test_state_dict_is_plain_and_resumes_the_same_curve(build: Callable[..., LambdaLR]) -> None:
    kwargs = {"total_steps": TOTAL, "warmup_steps": WARMUP, "min_lr": MIN_LR}
    reference = build(_optimizer(LR, LR / 3), **kwargs)
    expected = _trace(reference, TOTAL)

    first = build(_optimizer(LR, LR / 3), **kwargs)
    _trace(first, 17)
    buffer = io.BytesIO()
    torch.save({"optimizer": first.optimizer.state_dict(), "scheduler": first.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    for multiplier in state["scheduler"]["lr_lambdas"]:
        assert all(type(value) in (int, float) for value in multiplier.values())

    optimizer = _optimizer(LR, LR / 3)
    resumed = build(optimizer, **kwargs)
    optimizer.load_state_dict(state["optimizer"])
    resumed.load_state_dict(state["scheduler"])
    assert _trace(resumed, TOTAL - 17) == expected[17:]


@pytest.mark.parametrize("build", [warmup_cosine, constant])
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"total_steps": 0, "warmup_steps": 0, "min_lr": 0.0}, "total_steps must be positive"),
        ({"total_steps": 10, "warmup_steps": -1, "min_lr": 0.0}, "warmup_steps must be >= 0"),
        ({"total_steps": 10, "warmup_steps": 11, "min_lr": 0.0}, "must not exceed total_steps"),
        ({"total_steps": 10, "warmup_steps": 0, "min_lr": -1.0}, "min_lr must be >= 0"),
        ({"total_steps": 10, "warmup_steps": 0, "min_lr": 1e-3}, r"lr \(0.0003\) of param group 1"),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(
    build: Callable[..., LambdaLR], kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build(_optimizer(1e-3, 3e-4), **kwargs)
