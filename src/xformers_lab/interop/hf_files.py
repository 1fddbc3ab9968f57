"""Read and write Hugging Face model directories: config.json and the weights files."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from xformers_lab.errors import UserError
from xformers_lab.interop.adapter import Weights

SAFETENSORS, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
BIN, BIN_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
LEGACY_NAMES = {"gamma": "weight", "beta": "bias"}
"""Old TF-converted checkpoints (BERT) call LayerNorm parameters gamma and beta."""


def read_config(hf_dir: Path) -> dict[str, Any]:
    """config.json of an HF model directory."""
    path = hf_dir / "config.json"
    if not path.is_file():
        raise UserError(f"{hf_dir} is not a Hugging Face model directory (no config.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err})") from None


def read_weights(hf_dir: Path) -> Weights:
    """Every tensor of the directory's safetensors or pytorch_model.bin (sharded or not), fp32."""
    if (hf_dir / SAFETENSORS).is_file():
        weights = load_file(hf_dir / SAFETENSORS)
    elif (hf_dir / SAFETENSORS_INDEX).is_file():
        weights = _sharded(hf_dir, SAFETENSORS_INDEX, load_file)
    elif (hf_dir / BIN).is_file():
        weights = _torch_load(hf_dir / BIN)
    elif (hf_dir / BIN_INDEX).is_file():
        weights = _sharded(hf_dir, BIN_INDEX, _torch_load)
    else:
        raise UserError(f"{hf_dir} holds no weights ({SAFETENSORS} or {BIN})")
    return {_modern_name(k): v.float() for k, v in weights.items()}


def write_hf_dir(hf_dir: Path, config: dict[str, Any], weights: Weights) -> None:
    """config.json and model.safetensors (contiguous, unshared tensors) into `hf_dir`."""
    hf_dir.mkdir(parents=True, exist_ok=True)
    (hf_dir / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    tensors = {k: v.detach().contiguous().clone() for k, v in weights.items()}
    save_file(tensors, hf_dir / SAFETENSORS, metadata={"format": "pt"})


def _sharded(hf_dir: Path, index_name: str, load: Any) -> Weights:
    index = json.loads((hf_dir / index_name).read_text())
    weights: Weights = {}
    for shard in sorted(set(index["weight_map"].values())):
        weights.update(load(hf_dir / shard))
    return weights


def _torch_load(path: Path) -> Weights:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        raise UserError(f"{path} does not load as a state dict ({type(err).__name__})") from None


def _modern_name(key: str) -> str:
    head, _, last = key.rpartition(".")
    return f"{head}.{LEGACY_NAMES[last]}" if head and last in LEGACY_NAMES else key
