"""Peak FLOP/s lookup and MFU arithmetic of the throughput callback."""

from __future__ import annotations

import pytest

from xformers_lab.training.throughput import matmul_dtype, mfu, peak_flops


@pytest.mark.parametrize(
    ("name", "dtype", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989.4e12),
        ("NVIDIA H100 PCIe", "bf16", 756e12),
        ("NVIDIA H200", "bf16", 989.4e12),
        ("NVIDIA GH200 480GB", "tf32", 494.7e12),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312e12),
        ("NVIDIA A10", "bf16", 125e12),  # not an A100
        ("NVIDIA L4", "fp16", 121e12),
        ("NVIDIA L40S", "fp16", 362.05e12),  # not an L4
        ("NVIDIA GeForce RTX 4090", "bf16", 165.2e12),
        ("Tesla V100-SXM2-16GB", "fp16", 125e12),
        ("Tesla V100-SXM2-16GB", "tf32", 15.7e12),  # no tf32 cores: fp32 matmuls
        ("Tesla V100-SXM2-16GB", "bf16", None),
        ("NVIDIA A100-SXM4-80GB", "fp32", 19.5e12),
        ("Quadro P1000", "fp32", None),
    ],
)
def test_peak_flops_of_known_gpus(name: str, dtype: str, peak: float | None) -> None:
    assert peak_flops(name, dtype) == peak


def test_matmul_dtype_follows_precision_and_tf32() -> None:
    assert matmul_dtype("bf16-mixed", allow_tf32=False) == "bf16"
    assert matmul_dtype("bf16-true", allow_tf32=True) == "bf16"
    assert matmul_dtype("16-mixed", allow_tf32=True) == "fp16"
    assert matmul_dtype("32-true", allow_tf32=True) == "tf32"
    assert matmul_dtype("32-true", allow_tf32=False) == "fp32"


def test_mfu_is_achieved_over_peak_flops() -> None:
    assert mfu(1000.0, 6e9, 12e12) == pytest.approx(0.5)
    assert mfu(None, 6e9, 12e12) is None
    assert mfu(1000.0, 6e9, None) is None
