"""`python -m xformers_lab.describe [overrides]`: parameters, training FLOPs per token and a
training-memory estimate of a run's model, from its config alone (no model is allocated).

    python -m xformers_lab.describe model=t5 task=span
    python -m xformers_lab.describe model=gpt model.n_layers=12 model.n_heads=12 \\
        model.d_model=768 data.seq_len=1024 tokenizer=spm_bpe tokenizer.vocab_size=50304 \\
        trainer.precision=bf16-mixed

Takes the same overrides as `xformers_lab.train`, validated the same way. The vocabulary comes
from the tokenizer's settings (byte: its fixed size; spm: `tokenizer.vocab_size`);
`tokenizer=char` learns its vocabulary from the corpus, so give it as `vocab_size=N`.
"""

from __future__ import annotations

import sys
from dataclasses import asdict

from xformers_lab.cli import compose_config
from xformers_lab.core import TransformerConfig
from xformers_lab.data.tokenizers import build_tokenizer
from xformers_lab.data.tokenizers.spm import DEFAULT_VOCAB_SIZE
from xformers_lab.errors import UserError, reported_user_errors
from xformers_lab.estimates import (
    MemoryEstimate,
    ParamCounts,
    RowShape,
    count_params,
    flops_per_token,
    training_memory,
)
from xformers_lab.settings import RunSettings, resolve_settings

CONFIG_NAME = "train"
"""The config tree of `xformers_lab.train`, whose runs this describes."""
VOCAB_KEY = "vocab_size="


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    with reported_user_errors():
        print(describe(sys.argv[1:] if argv is None else argv))


def describe(argv: list[str]) -> str:
    """The report for a command line of overrides (plus an optional `vocab_size=N`)."""
    vocab_args = [arg for arg in argv if arg.startswith(VOCAB_KEY)]
    overrides = [arg for arg in argv if not arg.startswith(VOCAB_KEY)]
    settings = resolve_settings(compose_config(CONFIG_NAME, overrides))
    cfg = settings.model_config(_vocab_size(settings, vocab_args))
    shape = settings.row_shape()
    precision = settings.trainer.precision
    batch = settings.data.batch_size
    memory = training_memory(cfg, batch_size=batch, precision=precision, **asdict(shape))
    flops = flops_per_token(cfg, **asdict(shape))
    return "\n".join(
        [
            _architecture(cfg, overrides),
            *_parameters(count_params(cfg)),
            *_flops(flops, shape, batch, settings.task_name),
            *_memory(memory, shape, batch, precision),
        ]
    )


def _vocab_size(settings: RunSettings, vocab_args: list[str]) -> int:
    if vocab_args:
        value = vocab_args[-1][len(VOCAB_KEY) :]
        if not value.isdigit() or int(value) <= 0:
            raise UserError(f"vocab_size must be a positive integer, got {value!r}")
        return int(value)
    tokenizer = settings.tokenizer
    if tokenizer.kind == "byte":
        return build_tokenizer(tokenizer, []).vocab_size
    if tokenizer.kind.startswith("spm_"):
        return tokenizer.vocab_size or DEFAULT_VOCAB_SIZE
    raise UserError(
        f"tokenizer={tokenizer.kind} learns its vocabulary from the corpus; "
        "give its size as vocab_size=N"
    )


def _architecture(cfg: TransformerConfig, overrides: list[str]) -> str:
    layers = str(cfg.n_layers)
    if cfg.arch == "encoder_decoder":
        layers += f"+{cfg.decoder_layers}"
    return (
        f"{' '.join(overrides) or 'defaults'}: {cfg.arch}, {layers} layers, d_model {cfg.d_model},"
        f" {cfg.n_heads} heads ({cfg.n_kv_heads} kv) of {cfg.d_head}, d_ff {cfg.d_ff} ({cfg.ffn}),"
        f" {cfg.position} positions, vocab {cfg.vocab_size} (padded to {cfg.padded_vocab_size})"
    )


def _parameters(counts: ParamCounts) -> list[str]:
    return [
        "parameters",
        f"  embedding      {counts.embedding:>15,}  token and position tables, untied head",
        f"  non-embedding  {counts.non_embedding:>15,}  Kaplan's N",
        f"  total          {counts.total:>15,}",
    ]


def _flops(flops: float, shape: RowShape, batch: int, task: str) -> list[str]:
    tokens = shape.seq_len + shape.target_len
    row = f"{shape.seq_len} + {shape.target_len} target" if shape.target_len else str(shape.seq_len)
    head = "" if shape.head_positions is None else f", head on {shape.head_positions:g} per row"
    return [
        f"training FLOPs, forward + backward (6 x (N + head matrix) + 12·L·d·T per token;"
        f" task={task}: rows of {row} tokens{head})",
        f"  per token      {_si(flops, 'FLOP'):>15}",
        f"  per step       {_si(flops * tokens * batch, 'FLOP'):>15}  batch {batch}",
    ]


def _memory(memory: MemoryEstimate, shape: RowShape, batch: int, precision: str) -> list[str]:
    rows = [
        ("weights", memory.weights),
        ("gradients", memory.grads),
        ("AdamW states", memory.optimizer),
        ("activations", memory.activations),
        ("total", memory.total),
    ]
    lines = [f"training memory estimate (batch {batch}, precision {precision}, per device)"]
    return lines + [f"  {name:<13}{_si(value, 'B', binary=True):>17}" for name, value in rows]


def _si(value: float, unit: str, binary: bool = False) -> str:
    """1234567 -> "1.23 MFLOP"; binary: powers of 1024 (MiB, GiB ...)."""
    base = 1024.0 if binary else 1000.0
    prefixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi"] if binary else ["", "k", "M", "G", "T", "P", "E"]
    i = 0
    while abs(value) >= base and i < len(prefixes) - 1:
        value, i = value / base, i + 1
    return f"{value:.3g} {prefixes[i]}{unit}" if value < 100 else f"{value:.0f} {prefixes[i]}{unit}"


if __name__ == "__main__":
    main()
