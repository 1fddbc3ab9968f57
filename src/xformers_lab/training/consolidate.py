"""One file from a sharded (trainer=fsdp) checkpoint: for generation, fine-tuning, HF export, or
resuming on a single device."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.load import _load_distributed_checkpoint

from xformers_lab.errors import UserError
from xformers_lab.training.checkpoint_io import AtomicCheckpointIO
from xformers_lab.training.resume import checkpoint_step


def consolidate(source: str | Path, target: str | Path) -> Path:
    """Gather every rank's shards of the checkpoint directory `source` into the single-file
    checkpoint `target` (written atomically), in the format an unsharded run writes: the same
    weights, and optimizer states keyed by parameter index rather than by name. Needs memory
    for the whole checkpoint, on one CPU."""
    source, target = Path(source), Path(target)
    if not source.is_dir():
        raise UserError(
            f"{source} is not a sharded checkpoint directory (trainer=fsdp writes those)"
        )
    checkpoint_step(source)  # one clear line for an incomplete or foreign directory
    if target.is_dir():
        raise UserError(f"{target} is a directory; give the path of the file to write")
    checkpoint: dict[str, Any] = _load_distributed_checkpoint(source)
    names = sorted(k for k in checkpoint if re.fullmatch(r"optimizer_\d+", k))
    checkpoint["optimizer_states"] = [
        indexed_optimizer_state(checkpoint.pop(name)) for name in names
    ]
    AtomicCheckpointIO().save_checkpoint(checkpoint, target)
    return target


def indexed_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """torch.optim's own layout (`optimizer.state_dict()`): parameters numbered in group order,
    from the layout of `torch.distributed.checkpoint`, where they are named."""
    index: dict[str, int] = {}
    groups = []
    for group in state["param_groups"]:
        numbers = [index.setdefault(name, len(index)) for name in group["params"]]
        groups.append({**group, "params": numbers})
    per_param = {index[name]: value for name, value in state["state"].items()}
    return {"state": per_param, "param_groups": groups}
