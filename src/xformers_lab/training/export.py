"""Weights as safetensors: a file any framework reads without running code."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import save_model
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.tensor import DTensor

from xformers_lab.core import TransformerConfig, build_model

WEIGHTS_FILE = "model.safetensors"


def export_safetensors(model: nn.Module, config: TransformerConfig, task: str, path: Path) -> Path:
    """Write `model`'s weights to `path` (atomically), with its config and task as metadata.

    Tied weights are stored once; `safetensors.torch.load_model` puts them back into a model
    built from `TransformerConfig(**json.loads(metadata["model_config"]))`.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    config_json = json.dumps(config.to_dict())
    metadata = {"format": "xformers_lab", "task": task, "model_config": config_json}
    save_model(model, str(tmp), metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # safetensors creates it private; follow the umask instead
    os.replace(tmp, path)
    return path


def gathered_model(model: nn.Module, config: TransformerConfig) -> nn.Module | None:
    """`model` itself, or under FSDP an unsharded copy on global rank 0 (None elsewhere).

    Gathering the shards is a collective: every rank must call this."""
    if not any(isinstance(p, DTensor) for p in model.parameters()):
        return model
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(model, options=options)  # full on rank 0, empty elsewhere
    if not state:
        return None
    full = build_model(config)
    full.load_state_dict(state)
    return full
