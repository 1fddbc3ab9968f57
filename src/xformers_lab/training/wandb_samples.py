"""A W&B table of greedy continuations of a few fixed prompts, every N steps (objectives that
write text)."""

from __future__ import annotations

from typing import Any

import lightning as L

from xformers_lab.inference.generation import GenerationConfig, generate_text
from xformers_lab.training.wandb_logger import LabWandbLogger

COLUMNS = ["step", "prompt", "completion"]


class GenerationSamples(L.Callback):
    """Every `every_n_steps` optimizer steps (and at the last), continues each prompt greedily
    with the model being trained and logs the table of every sample so far under `samples`.

    Runs on global rank zero only, on the bare model (no collective calls), in eval mode.
    """

    def __init__(
        self, logger: LabWandbLogger, prompts: list[str], every_n_steps: int, max_new_tokens: int
    ) -> None:
        self.logger = logger
        self.prompts = prompts
        self.every_n_steps = every_n_steps
        self.max_new_tokens = max_new_tokens
        self.rows: list[list[Any]] = []
        self._last_step = -1

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._last_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        step = trainer.global_step
        if not trainer.is_global_zero or step == self._last_step:
            return  # with gradient accumulation, several micro-batches end at the same step
        self._last_step = step
        if step % self.every_n_steps == 0 or step == trainer.max_steps:
            samples = zip(self.prompts, self.sample(module), strict=True)
            self.rows += [[step, prompt, completion] for prompt, completion in samples]
            self.logger.log_table("samples", columns=COLUMNS, data=self.rows, step=step)

    def sample(self, module: L.LightningModule) -> list[str]:
        """One greedy continuation per prompt, framed and read as the objective does (a chat
        template, a source prefix: `Objective.prompt_ids`, `completion_text`)."""
        model, config = module.model, self.generation_config(module)
        objective = getattr(module, "objective", None)
        ids = [objective.prompt_ids(p) for p in self.prompts] if objective else None
        decode = objective.completion_text if objective else None
        was_training = model.training
        model.eval()
        try:
            results = generate_text(model, module.tokenizer, self.prompts, config, ids, decode)
            return [rows[0] for rows in results]
        finally:
            model.train(was_training)

    def generation_config(self, module: L.LightningModule) -> GenerationConfig:
        """Greedy, `max_new_tokens` long or as long as the model's context leaves room for."""
        objective = getattr(module, "objective", None)
        if objective is not None:
            longest = max(len(objective.prompt_ids(p)) for p in self.prompts)
        else:
            longest = max(len(module.tokenizer.encode(p)) for p in self.prompts) + 1  # + </s>
        room = module.model.config.max_seq_len - longest
        return GenerationConfig(max_new_tokens=max(1, min(self.max_new_tokens, room)))


def sample_callbacks(loggers: list[Any], generative: bool) -> list[L.Callback]:
    """A samples table for each W&B logger that asks for one, when the objective's model writes
    text (`Objective.generative`)."""
    if not generative:
        return []
    return [
        GenerationSamples(
            logger,
            prompts=list(logger.settings.sample_prompts),
            every_n_steps=logger.settings.samples_every_n_steps,
            max_new_tokens=logger.settings.sample_max_new_tokens,
        )
        for logger in loggers
        if isinstance(logger, LabWandbLogger) and logger.settings.samples_every_n_steps > 0
    ]
