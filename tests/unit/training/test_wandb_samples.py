"""The samples table: greedy continuations that fit the model's context, logged once per due
optimizer step with every earlier row kept."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.data.config import TokenizerConfig
from xformers_lab.data.tokenizers import build_tokenizer
from xformers_lab.training.wandb_samples import COLUMNS, GenerationSamples

PROMPTS = ["def ", "import os"]


class Recorder:
    """Stands in for the W&B logger: keeps what log_table receives."""

    def __init__(self) -> None:
        self.tables: list[tuple[int, list[list[Any]]]] = []

    def log_table(self, key: str, columns: list[str], data: list[list[Any]], step: int) -> None:
        assert key == "samples" and columns == COLUMNS
        self.tables.append((step, [list(row) for row in data]))


def _module(max_seq_len: int) -> SimpleNamespace:
    tokenizer = build_tokenizer(TokenizerConfig(kind="byte"), [])
    torch.manual_seed(0)
    config = TransformerConfig(
        vocab_size=tokenizer.vocab_size, d_model=32, n_heads=2, n_layers=1, max_seq_len=max_seq_len
    )
    return SimpleNamespace(tokenizer=tokenizer, model=build_model(config))


def test_samples_fit_a_short_context_and_leave_training_mode_alone() -> None:
    module = _module(max_seq_len=16)  # learned positions: a longer sequence would fail
    module.model.train()
    callback = GenerationSamples(Recorder(), PROMPTS, every_n_steps=1, max_new_tokens=48)
    room = 16 - (1 + len("import os"))  # the longest prompt: </s> and its bytes
    assert callback.generation_config(module).max_new_tokens == room
    assert all(isinstance(c, str) for c in callback.sample(module))  # 48 new tokens would not fit
    assert module.model.training
    long = GenerationSamples(Recorder(), PROMPTS, every_n_steps=1, max_new_tokens=4)
    assert long.generation_config(module).max_new_tokens == 4


def test_one_table_per_due_step_with_every_row_so_far() -> None:
    module, logger = _module(max_seq_len=64), Recorder()
    callback = GenerationSamples(logger, PROMPTS, every_n_steps=2, max_new_tokens=4)
    trainer = SimpleNamespace(is_global_zero=True, global_step=0, max_steps=5)
    callback.on_train_start(trainer, module)
    for step in (0, 1, 1, 2, 2, 3, 4, 5):  # repeated steps: micro-batches of one step
        trainer.global_step = step
        callback.on_train_batch_end(trainer, module, None, None, 0)
    assert [step for step, _ in logger.tables] == [2, 4, 5]
    assert [row[:2] for row in logger.tables[-1][1]] == [
        [step, prompt] for step in (2, 4, 5) for prompt in PROMPTS
    ]
