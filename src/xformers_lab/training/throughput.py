"""Throughput, FLOPs per token and model FLOPs utilisation (MFU), logged at logging steps."""

from __future__ import annotations

import re
from typing import Any

import lightning as L
import torch

from xformers_lab.training.log_steps import written_this_step
from xformers_lab.training.run_stats import Mark, RunStats, tokens_per_second

# Dense (no sparsity) peak FLOP/s of one GPU by the arithmetic its matmuls run in, from NVIDIA's
# datasheets (SXM parts unless named). None: the GPU has no such tensor-core path.
# Patterns are matched in order against `torch.cuda.get_device_name()`.
GPU_PEAK_FLOPS: list[tuple[str, dict[str, float | None]]] = [
    (r"\bH100\b.*\bPCIe\b", {"bf16": 756e12, "fp16": 756e12, "tf32": 378e12, "fp32": 51.2e12}),
    (r"\bG?H[12]00\b", {"bf16": 989.4e12, "fp16": 989.4e12, "tf32": 494.7e12, "fp32": 66.9e12}),
    (r"\bA100\b", {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12}),
    (r"\bL40S\b", {"bf16": 362.05e12, "fp16": 362.05e12, "tf32": 183.2e12, "fp32": 91.6e12}),
    (r"\bL4\b", {"bf16": 121e12, "fp16": 121e12, "tf32": 60e12, "fp32": 30.3e12}),
    (r"\bA10\b", {"bf16": 125e12, "fp16": 125e12, "tf32": 62.5e12, "fp32": 31.2e12}),
    (r"\bV100\b", {"bf16": None, "fp16": 125e12, "tf32": None, "fp32": 15.7e12}),
    (r"\bRTX 4090\b", {"bf16": 165.2e12, "fp16": 165.2e12, "tf32": 82.6e12, "fp32": 82.6e12}),
    (r"\bRTX 3090\b", {"bf16": 71e12, "fp16": 71e12, "tf32": 35.6e12, "fp32": 35.6e12}),
]


def matmul_dtype(precision: str, allow_tf32: bool) -> str:
    """The arithmetic a Lightning `precision` runs matmuls in: bf16, fp16, tf32 or fp32."""
    if precision.startswith("bf16"):
        return "bf16"
    if precision.startswith("16"):
        return "fp16"
    return "tf32" if allow_tf32 else "fp32"


def peak_flops(device_name: str, dtype: str) -> float | None:
    """Dense peak FLOP/s of the named GPU in `dtype`; None for an unknown device or path
    (a GPU without tf32 runs fp32 matmuls in fp32)."""
    for pattern, peaks in GPU_PEAK_FLOPS:
        if re.search(pattern, device_name):
            if dtype == "tf32" and peaks["tf32"] is None:
                return peaks["fp32"]
            return peaks[dtype]
    return None


def device_peak_flops(trainer: L.Trainer) -> float | None:
    """Peak FLOP/s of all the run's devices together; None on CPUs and unknown GPUs."""
    device = trainer.strategy.root_device
    if device.type != "cuda":
        return None
    allow_tf32 = torch.get_float32_matmul_precision() != "highest"
    dtype = matmul_dtype(str(trainer.precision), allow_tf32)
    peak = peak_flops(torch.cuda.get_device_name(device), dtype)
    return None if peak is None else peak * trainer.world_size


def mfu(tokens_per_sec: float | None, flops_per_token: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: the share of the devices' peak the model's FLOPs would fill."""
    if tokens_per_sec is None or peak is None:
        return None
    return tokens_per_sec * flops_per_token / peak


class Throughput(L.Callback):
    """Logs `train/flops_per_token` (`estimates.flops_per_token` for the run's rows) and
    `train/mfu` (when the GPU's peak is known) from the token rate between consecutive logging
    steps (all devices, validation excluded); `TokenMetrics` logs the rate itself as
    `train/tokens_per_sec`. Tokens come from `RunStats`, which counts them from batch shapes; the
    clock is read only at logging steps, so steps between them never wait for the device.
    """

    def __init__(self, stats: RunStats, flops_per_token: float) -> None:
        self.stats = stats
        self.flops_per_token = flops_per_token
        self.peak: float | None = None
        self._last: Mark | None = None
        self._last_step = -1

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.peak = device_peak_flops(trainer)
        self._last = self.stats.mark()

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        step = trainer.global_step
        if step == self._last_step or not written_this_step(trainer):
            return  # mid-accumulation, or not a step the loggers write
        self._last_step = step
        now = self.stats.mark()
        rate = tokens_per_second(self._last, now) if self._last is not None else None
        self._last = now
        metrics = {"train/flops_per_token": self.flops_per_token}
        utilisation = mfu(rate, self.flops_per_token, self.peak)
        if utilisation is not None:
            metrics["train/mfu"] = utilisation
        for name, value in metrics.items():
            module.log(name, value, on_step=True, on_epoch=False, rank_zero_only=True)

    def summary(self, train_tokens_per_sec: float | None) -> dict[str, float | None]:
        """`summary.json` fields: FLOPs per token, and MFU over the steady-state window."""
        return {
            "flops_per_token": self.flops_per_token,
            "mfu": mfu(train_tokens_per_sec, self.flops_per_token, self.peak),
        }
