"""A stop test ends a row early without changing what it generated up to there, and stop strings
cut the text as if the row had run to max_new_tokens."""

from __future__ import annotations

import torch

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.data.tokenizers import CharTokenizer
from xformers_lab.inference.generation import (
    GenerationConfig,
    cut_at_stop,
    generate_ids,
    generate_text,
    stop_strings,
)

EOS, PAD = 1, 0
PROMPTS = [[EOS, 20, 21, 22], [EOS, 30], [EOS, 40, 41]]


def _model(vocab_size: int = 90) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=vocab_size, d_model=32, n_heads=4, n_layers=2)
    return build_model(cfg).eval()


def test_a_stopped_row_keeps_the_prefix_it_generated() -> None:
    model, cfg = _model(), GenerationConfig(max_new_tokens=12)
    full = generate_ids(model, PROMPTS, cfg, eos_id=EOS, pad_id=PAD)
    short = generate_ids(model, PROMPTS, cfg, eos_id=EOS, pad_id=PAD, stopped=lambda r: len(r) >= 3)
    assert all(len(rows[0]) == 12 for rows in full)  # no EOS: the stop is what ends them
    assert [rows[0] for rows in short] == [rows[0][:3] for rows in full]


def test_stop_strings_give_the_text_of_a_full_run_cut_at_the_stop() -> None:
    tokenizer = CharTokenizer.train(["abcdefghij klmnop\n" * 3], n_sentinels=0)
    model = _model(tokenizer.vocab_size)
    full = generate_text(model, tokenizer, ["ab", "kl"], GenerationConfig(max_new_tokens=40))
    stops = tuple({text[5:7] for (text,) in full})  # strings each completion holds
    stopped = generate_text(
        model, tokenizer, ["ab", "kl"], GenerationConfig(max_new_tokens=40, stop=stops)
    )
    assert stopped == [[cut_at_stop(text, stops)] for (text,) in full]
    assert all(len(text) < len(f) for (text,), (f,) in zip(stopped, full, strict=True))
    test = stop_strings(tokenizer, stops)
    assert test is not None and test(tokenizer.encode(f"xx{stops[0]}"))
    assert stop_strings(tokenizer, ("",)) is None
