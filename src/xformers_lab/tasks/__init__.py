"""Objectives: one thin LightningModule each, and what each needs from the data and the model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xformers_lab.data.collators import CausalLMCollator, ClassificationCollator, Collator
from xformers_lab.tasks.base import LanguageModelTask
from xformers_lab.tasks.classify import ClassifyOptions, ClassifyTask, classify_collator
from xformers_lab.tasks.clm import CausalLMTask
from xformers_lab.tasks.mlm import MaskedLMTask, MLMOptions, mlm_collator
from xformers_lab.tasks.span import (
    SpanCorruptionTask,
    SpanOptions,
    check_span_settings,
    span_collator,
    span_lengths,
)


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
    collator: Callable[[Any, int, Any], Collator | ClassificationCollator]
    """(tokenizer, seq_len, options) -> collate function."""
    block_len: Callable[[int, Any], int]
    """(seq_len, options) -> tokens per window cut from the stream."""
    stride: Callable[[int, Any], int]
    """(seq_len, options) -> tokens between the starts of consecutive windows."""
    options: type = NoOptions
    """Frozen dataclass of the objective's options, validated like every other group."""
    check: Callable[[int, Any, Any], None] | None = None
    """(seq_len, TokenizerConfig, options) -> None, raising `UserError` when the objective cannot
    make rows of seq_len with this tokenizer (run at config time)."""
    labelled: bool = False
    """Trains on labelled examples (`data.labelled`: text and label, one padded example per row)
    instead of packed windows; `block_len` and `stride` are then unused, and `options` has
    `num_labels`."""


TASKS: dict[str, TaskSpec] = {
    # windows of seq_len + 1 tokens, overlapping by one: inputs and shifted targets waste nothing
    "clm": TaskSpec(
        module=CausalLMTask,
        arch="decoder",
        collator=lambda tokenizer, seq_len, options: CausalLMCollator(),
        block_len=lambda seq_len, options: seq_len + 1,
        stride=lambda seq_len, options: seq_len,
    ),
    # windows of seq_len - 2 tokens, framed as <cls> window <sep> by the collator
    "mlm": TaskSpec(
        module=MaskedLMTask,
        arch="encoder",
        collator=mlm_collator,
        block_len=lambda seq_len, options: seq_len - 2,
        stride=lambda seq_len, options: seq_len - 2,
        options=MLMOptions,
    ),
    # one labelled example per row: <cls> text <sep>, truncated to seq_len, padded per batch
    "classify": TaskSpec(
        module=ClassifyTask,
        arch="encoder",
        collator=classify_collator,
        block_len=lambda seq_len, options: seq_len,
        stride=lambda seq_len, options: seq_len,
        options=ClassifyOptions,
        labelled=True,
    ),
    # windows of the raw length whose corruption is exactly seq_len tokens (T5's arithmetic)
    "span": TaskSpec(
        module=SpanCorruptionTask,
        arch="encoder_decoder",
        collator=span_collator,
        block_len=lambda seq_len, options: span_lengths(seq_len, options).tokens,
        stride=lambda seq_len, options: span_lengths(seq_len, options).tokens,
        options=SpanOptions,
        check=check_span_settings,
    ),
}

__all__ = ["TASKS", "LanguageModelTask", "NoOptions", "TaskSpec"]
