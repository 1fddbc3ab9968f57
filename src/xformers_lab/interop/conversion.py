"""Whole conversions: an HF model directory to one of our checkpoints, and back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from xformers_lab import checkpoints
from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.data.tokenizers import HFTokenizer, Tokenizer
from xformers_lab.errors import UserError
from xformers_lab.inference.loading import load
from xformers_lab.interop.hf_files import read_config, read_weights, write_hf_dir
from xformers_lab.interop.registry import adapter_for, adapter_for_hf
from xformers_lab.interop.tokenizer_files import (
    SPM_FILES,
    TOKENIZER_JSON,
    read_tokenizer,
    write_tokenizer,
)

MODEL_PREFIX = "model."
"""Our checkpoints hold the objective's state dict, in which the core model is `model`."""


def import_hf(
    hf_dir: str | Path, require_tokenizer: bool = False
) -> tuple[torch.nn.Module, HFTokenizer | None, str]:
    """(our model in eval mode, the directory's tokenizer or None, our task name).

    The config and the tokenizer are checked before any weight is read.
    """
    hf_dir = Path(hf_dir)
    hf_config = read_config(hf_dir)
    adapter = adapter_for_hf(hf_config)
    cfg = adapter.config_from_hf(hf_config)
    tokenizer = read_tokenizer(hf_dir, hf_config)
    if tokenizer is None and require_tokenizer:
        raise UserError(
            f"{hf_dir} has no tokenizer ({TOKENIZER_JSON}, {' or '.join(SPM_FILES)}); a checkpoint "
            "carries its tokenizer: copy the model's tokenizer files into the directory"
        )
    model = build_model(cfg)
    try:
        model.load_state_dict(adapter.weights_from_hf(read_weights(hf_dir), cfg), strict=True)
    except KeyError as err:
        raise UserError(f"{hf_dir}: the weights lack {err}, which config.json implies") from None
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise UserError(f"{hf_dir}: the weights do not fit config.json ({first})") from None
    return model.eval(), tokenizer, adapter.task


def convert_from_hf(hf_dir: str | Path, out: str | Path) -> Path:
    """Write `hf_dir`'s model, with its tokenizer, as a checkpoint in the format our training
    writes."""
    model, tokenizer, task = import_hf(hf_dir, require_tokenizer=True)
    source = {"converted_from": str(Path(hf_dir).resolve())}
    return save_checkpoint(Path(out), model, tokenizer, task, source)


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    task: str,
    run_config: dict[str, Any],
) -> Path:
    """A checkpoint that `xformers_lab.load` and `init_from=` read like a trained one."""
    payload = checkpoints.Payload(
        task=task, model_config=model.config, tokenizer=tokenizer.state_dict(), config=run_config
    )
    weights = {MODEL_PREFIX + k: v for k, v in model.state_dict().items()}
    return checkpoints.write(path, weights, payload)


def convert_to_hf(ckpt: str | Path, hf_dir: str | Path) -> Path:
    """Write checkpoint `ckpt` as an HF model directory (config.json, model.safetensors, and the
    tokenizer when it came from HF)."""
    lab = load(ckpt)
    return export_hf(lab.model, lab.tokenizer, Path(hf_dir))


def export_hf(model: torch.nn.Module, tokenizer: Tokenizer | None, hf_dir: Path) -> Path:
    """Write `model` (and `tokenizer` when it came from HF) as an HF model directory; without a
    tokenizer, config.json has no special token ids."""
    cfg: TransformerConfig = model.config
    adapter = adapter_for(cfg)
    hf_config = {
        "architectures": [adapter.architecture],
        "model_type": adapter.model_type,
        **adapter.config_to_hf(cfg),
    }
    if tokenizer is not None:
        hf_config |= _token_ids(tokenizer, decoder_start=cfg.arch == "encoder_decoder")
    write_hf_dir(hf_dir, hf_config, adapter.weights_to_hf(model.state_dict(), cfg))
    if isinstance(tokenizer, HFTokenizer):
        write_tokenizer(tokenizer, hf_dir, adapter.model_type)
    return hf_dir


def _token_ids(tokenizer: Tokenizer, decoder_start: bool) -> dict[str, int | None]:
    """config.json's special ids (generation reads them), from the checkpoint's tokenizer; an
    encoder-decoder starts decoding from pad, as T5 and our span objective do."""
    ids = {"pad_token_id": tokenizer.pad_id, "eos_token_id": tokenizer.eos_id}
    ids["bos_token_id"] = tokenizer.bos_id
    if decoder_start:
        ids["decoder_start_token_id"] = tokenizer.pad_id
    return ids
