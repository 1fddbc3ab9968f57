"""Load a trained model from its checkpoint alone: no corpus, no conf/ tree, no Lightning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xformers_lab import checkpoints
from xformers_lab.core import TransformerConfig
from xformers_lab.data.tokenizers import Tokenizer, tokenizer_from_state
from xformers_lab.errors import UserError
from xformers_lab.inference.fill_mask import Candidate, fill_mask
from xformers_lab.inference.generation import GenerationConfig, generate_text
from xformers_lab.tasks import Objective, objective_class


@dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, with the tokenizer it was trained with and its
    objective's head. `generate` and `fill_mask` work by architecture; the objective adds its
    own verbs (`lab.classify(...)` on a classifier), listed in `verbs`."""

    model: nn.Module
    tokenizer: Tokenizer
    config: TransformerConfig
    task: str
    path: Path
    objective: Objective
    run_config: dict[str, Any] = field(default_factory=dict)

    @property
    def verbs(self) -> tuple[str, ...]:
        """What this checkpoint's objective offers beyond `generate` and `fill_mask`."""
        return type(self.objective).verbs

    def __getattr__(self, name: str) -> Any:
        objective = self.__dict__.get("objective")
        if objective is not None and name in type(objective).verbs:
            return getattr(objective, name)
        verbs = ", ".join(type(objective).verbs) if objective is not None else ""
        raise AttributeError(
            f"{name!r}: a task={self.__dict__.get('task')} checkpoint offers generate, fill_mask"
            f"{', ' + verbs if verbs else ''}"
        )

    def fill_mask(self, text: str, top_k: int = 5) -> list[list[Candidate]]:
        """Top `top_k` (token, prob) candidates for each `<mask>` of `text` (masked LMs only)."""
        return fill_mask(self.model, self.tokenizer, text, top_k)

    def generate(
        self,
        prompts: str | list[str],
        config: GenerationConfig | None = None,
        chat: bool = True,
        **options: Any,
    ) -> Any:
        """Continue `prompts` (decoders) or fill their `<extra_id_N>` spans (encoder-decoders).

        Prompts are framed as the checkpoint trained (`Objective.prompt_ids`): a fine-tuned
        chat model's chat template (`chat=False` turns it off), a seq2seq model's source
        prefix. Options are `GenerationConfig` fields (max_new_tokens, do_sample, temperature,
        top_k, top_p, num_beams, num_samples, stop, seed ...). A string gives a string (a list
        of `num_samples` strings when > 1); a list of prompts gives a list of those.
        """
        cfg = config or GenerationConfig(**options)
        batch = [prompts] if isinstance(prompts, str) else list(prompts)
        results = self.complete(batch, cfg, chat)
        shaped = [rows[0] if cfg.num_samples == 1 else rows for rows in results]
        return shaped[0] if isinstance(prompts, str) else shaped

    def complete(
        self, prompts: list[str], cfg: GenerationConfig, chat: bool = True
    ) -> list[list[str]]:
        """`cfg.num_samples` completions of each prompt, framed as the checkpoint trained."""
        objective = self.objective
        ids = [objective.prompt_ids(p, chat=chat) for p in prompts]
        return generate_text(
            self.model,
            self.tokenizer,
            prompts,
            cfg,
            prompt_ids=ids,
            decode=objective.completion_text,
        )


def load(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model, its objective's head and the tokenizer saved in `path`, in eval mode
    on `device`."""
    checkpoint = checkpoints.read(path)
    payload = checkpoint.payload
    tokenizer = tokenizer_from_state(payload.tokenizer)
    objective = objective_class(payload.task).from_head(
        payload.model_config, tokenizer, payload.head
    )
    try:
        objective.load_state_dict(checkpoint.weights)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"checkpoint {path}: its weights do not fit its config ({first})") from None
    objective.to(device).eval()
    return LoadedModel(
        model=objective.model,
        tokenizer=tokenizer,
        config=payload.model_config,
        task=payload.task,
        path=Path(path),
        objective=objective,
        run_config=payload.config,
    )
