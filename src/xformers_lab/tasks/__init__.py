"""Objectives: one thin LightningModule each, and what each needs from the data and the model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xformers_lab.data.collators import CausalLMCollator
from xformers_lab.tasks.base import LanguageModelTask
from xformers_lab.tasks.clm import CausalLMTask


@dataclass(frozen=True)
class TaskSpec:
    """How an objective is wired: its module, the model architecture it trains, and how its
    packed rows relate to `data.seq_len`."""

    module: type[LanguageModelTask]
    arch: str
    """The `model.arch` this objective trains."""
    collator: Callable[..., Any]
    """Factory (tokenizer, seq_len, **task options) -> collate function."""
    block_len: Callable[[int], int]
    """Packed row length for a given seq_len."""
    stride: Callable[[int], int]
    """Distance between the starts of consecutive packed rows."""


def _causal_collator(tokenizer: Any, seq_len: int) -> CausalLMCollator:
    return CausalLMCollator()


TASKS: dict[str, TaskSpec] = {
    # rows of seq_len + 1 tokens, overlapping by one, so inputs and shifted targets waste nothing
    "clm": TaskSpec(CausalLMTask, "decoder", _causal_collator, lambda n: n + 1, lambda n: n),
}

__all__ = ["TASKS", "LanguageModelTask", "TaskSpec"]
