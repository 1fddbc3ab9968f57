"""Many devices: `trainer.strategy` (DDP, or FSDP2 through Lightning's ModelParallelStrategy),
and what the model needs before training starts there (compiled blocks, sharded blocks)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.strategies import ModelParallelStrategy, Strategy
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

from xformers_lab.core.block import Block
from xformers_lab.training.trainer_config import FSDP

ENTRY_METHODS = ("masked_logits", "hidden_states", "summed_nats")
"""Model methods that training calls instead of `forward`: FSDP gathers the root's parameters
for them too."""
PARAM_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
"""Precisions whose FSDP2 policy all-gathers and computes in half precision."""


def build_strategy(name: str) -> str | Strategy:
    """The Lightning strategy for `trainer.strategy`: ours for `fsdp`, else Lightning's by name."""
    return ShardedStrategy() if name == FSDP else name


class ShardedStrategy(ModelParallelStrategy):
    """FSDP2 over every device (data parallel only), with sharded checkpoints written safely.

    Each rank writes its shards into a hidden temporary directory next to the target; once every
    rank is done, rank 0 moves the old checkpoint aside, renames the new one into place and
    deletes the old one. A crash mid-write leaves only the temporary directory (ignored, removed
    by `trainer.resume=auto`), never a checkpoint with missing shards.
    """

    def __init__(self) -> None:
        super().__init__(data_parallel_size="auto", tensor_parallel_size=1)

    def setup_environment(self) -> None:
        self._data_parallel_size = self.num_nodes * self.num_processes  # every rank shards
        super().setup_environment()

    def save_checkpoint(
        self, checkpoint: dict[str, Any], filepath: Any, storage_options: Any | None = None
    ) -> None:
        target = Path(self.broadcast(str(filepath)))
        tmp = target.with_name(f".{target.name}.{self.broadcast(uuid.uuid4().hex)}.tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        self.barrier("sharded-checkpoint-written")
        if self.global_rank == 0:
            old = target.with_name(f".{target.name}.old")
            if target.exists():
                target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        self.barrier("sharded-checkpoint-renamed")


def compile_blocks(model: nn.Module) -> None:
    """`torch.compile` each transformer block in place (as torchtitan does): small graphs that
    compile once and are reused by every layer, compose with FSDP2's per-block hooks and with
    activation checkpointing, and keep parameter names (checkpoints stay loadable uncompiled)."""
    for block in blocks(model):
        block.compile()


def shard(model: nn.Module, mesh: DeviceMesh, precision: str) -> None:
    """FSDP2: each block is one all-gather unit, the root (embeddings, head, norms) another.
    Under a mixed precision, parameters are gathered and used in half precision while gradients
    are reduced, and the optimizer steps, in fp32."""
    policy = MixedPrecisionPolicy(
        param_dtype=PARAM_DTYPES.get(precision), reduce_dtype=torch.float32
    )
    data_parallel = mesh["data_parallel"]
    for block in blocks(model):
        fully_shard(block, mesh=data_parallel, mp_policy=policy)
    fully_shard(model, mesh=data_parallel, mp_policy=policy)
    for name in ENTRY_METHODS:
        if hasattr(model, name):
            register_fsdp_forward_method(model, name)


def blocks(model: nn.Module) -> list[Block]:
    """The residual blocks of every stack (encoder and decoder alike), in order."""
    return [module for module in model.modules() if isinstance(module, Block)]
