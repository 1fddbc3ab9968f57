"""Load a trained model from its checkpoint alone: no corpus, no conf/ tree, no Lightning."""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.data.tokenizers import Tokenizer, tokenizer_from_state
from xformers_lab.errors import UserError
from xformers_lab.inference.fill_mask import Candidate, fill_mask
from xformers_lab.inference.generation import GenerationConfig, generate_text
from xformers_lab.tasks.base import CHECKPOINT_KEY


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, with the tokenizer it was trained with."""

    model: nn.Module
    tokenizer: Tokenizer
    config: TransformerConfig
    task: str
    path: Path
    run_config: dict[str, Any] = field(default_factory=dict)

    def fill_mask(self, text: str, top_k: int = 5) -> list[list[Candidate]]:
        """Top `top_k` (token, prob) candidates for each `<mask>` of `text` (masked LMs only)."""
        return fill_mask(self.model, self.tokenizer, text, top_k)

    def generate(
        self, prompts: str | list[str], config: GenerationConfig | None = None, **options: Any
    ) -> Any:
        """Continue `prompts` (decoders) or fill their `<extra_id_N>` spans (encoder-decoders).

        Options are `GenerationConfig` fields (max_new_tokens, do_sample, temperature, top_k,
        top_p, num_beams, num_samples, stop, seed ...). A string gives a string (a list of
        `num_samples` strings when > 1); a list of prompts gives a list of those.
        """
        cfg = config or GenerationConfig(**options)
        batch = [prompts] if isinstance(prompts, str) else list(prompts)
        results = generate_text(self.model, self.tokenizer, batch, cfg)
        shaped = [rows[0] if cfg.num_samples == 1 else rows for rows in results]
        return shaped[0] if isinstance(prompts, str) else shaped


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, loaded with `weights_only=True` (a file cannot run code).

    A missing, truncated or foreign file is a `UserError` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(
            f"checkpoint {path} is sharded (trainer=fsdp); make one file of it with: "
            f"python -m xformers_lab.convert consolidate {path} <out.ckpt>"
        )
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"checkpoint {path} is corrupt or not a checkpoint ({first})") from None
    if not isinstance(checkpoint, dict) or CHECKPOINT_KEY not in checkpoint:
        raise UserError(f"{path} is not an xformers_lab checkpoint (no model config inside)")
    return checkpoint


def load(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model and tokenizer saved in `path`, in eval mode on `device`."""
    checkpoint = read_checkpoint(path)
    payload = checkpoint[CHECKPOINT_KEY]
    config = TransformerConfig(**payload["model_config"])
    model = build_model(config)
    prefix = "model."
    weights = {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }
    model.load_state_dict(weights)
    return LoadedModel(
        model=model.to(device).eval(),
        tokenizer=tokenizer_from_state(payload["tokenizer"]),
        config=config,
        task=payload["task"],
        path=Path(path),
        run_config=payload.get("config", {}),
    )
