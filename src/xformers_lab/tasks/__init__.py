"""Objectives: one thin LightningModule each, and what each needs from the data and the model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xformers_lab.data.collators import CausalLMCollator, Collator
from xformers_lab.tasks.base import LanguageModelTask
from xformers_lab.tasks.clm import CausalLMTask


@dataclass(frozen=True, kw_only=True)
class NoOptions:
    """For objectives whose task config holds nothing but `name`."""


@dataclass(frozen=True)
class TaskSpec:
    """How an objective is wired: its module, the architecture it trains, its typed options
    (the task config's keys besides `name`), its collator, and how packed windows relate to
    `data.seq_len`."""

    module: type[LanguageModelTask]
    arch: str
    """The `model.arch` this objective trains."""
    collator: Callable[[Any, int, Any], Collator]
    """(tokenizer, seq_len, options) -> collate function."""
    block_len: Callable[[int, Any], int]
    """(seq_len, options) -> tokens per window cut from the stream."""
    stride: Callable[[int, Any], int]
    """(seq_len, options) -> tokens between the starts of consecutive windows."""
    options: type = NoOptions
    """Frozen dataclass of the objective's options, validated like every other group."""


TASKS: dict[str, TaskSpec] = {
    # windows of seq_len + 1 tokens, overlapping by one: inputs and shifted targets waste nothing
    "clm": TaskSpec(
        module=CausalLMTask,
        arch="decoder",
        collator=lambda tokenizer, seq_len, options: CausalLMCollator(),
        block_len=lambda seq_len, options: seq_len + 1,
        stride=lambda seq_len, options: seq_len,
    ),
}

__all__ = ["TASKS", "LanguageModelTask", "NoOptions", "TaskSpec"]
