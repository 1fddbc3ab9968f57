"""FSDP2 sharding as `trainer.strategy=fsdp` applies it, on a one-rank gloo group: every block is
its own unit, and under bf16-mixed the blocks compute with bf16 weights while the sharded
parameters and their gradients stay fp32 (what the optimizer steps on)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.training.parallel import blocks, shard


@pytest.fixture
def one_rank() -> Iterator[None]:
    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(("precision", "compute_dtype"), [("bf16-mixed", torch.bfloat16),
                                                         ("32-true", torch.float32)])  # fmt: skip
def test_blocks_are_sharded_units_computing_in_the_policy_dtype(
    one_rank: None, precision: str, compute_dtype: torch.dtype
) -> None:
    model = build_model(TransformerConfig(vocab_size=50, d_model=32, n_layers=2, n_heads=4))
    mesh = init_device_mesh("cpu", (1, 1), mesh_dim_names=("data_parallel", "tensor_parallel"))
    shard(model, mesh, precision)
    assert isinstance(model, FSDPModule) and all(isinstance(b, FSDPModule) for b in blocks(model))
    seen: list[torch.dtype] = []
    blocks(model)[0].attn.register_forward_pre_hook(lambda m, args: seen.append(m.qkv.weight.dtype))
    model(torch.zeros(2, 8, dtype=torch.long)).float().sum().backward()
    assert seen == [compute_dtype]
    assert (
        {p.dtype for p in model.parameters()}
        == {p.grad.dtype for p in model.parameters()}
        == {torch.float32}
    )
