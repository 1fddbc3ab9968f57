"""TransformerConfig: derived values, validation messages, and exact round trip."""

from __future__ import annotations

import pytest

from xformers_lab.core import TransformerConfig


def test_derived_values_are_filled() -> None:
    cfg = TransformerConfig(vocab_size=300, d_model=96, n_heads=6)
    assert (cfg.n_kv_heads, cfg.d_head, cfg.d_ff, cfg.final_norm) == (6, 16, 384, True)
    assert cfg.padded_vocab_size == 320


def test_gated_ffn_default_width_is_a_multiple_of_64() -> None:
    cfg = TransformerConfig(vocab_size=10, d_model=256, ffn="swiglu")
    assert cfg.d_ff % 64 == 0 and 640 <= cfg.d_ff <= 704


def test_post_norm_has_no_final_norm_by_default() -> None:
    assert TransformerConfig(vocab_size=10, norm_position="post").final_norm is False


def test_round_trip_through_dict() -> None:
    cfg = TransformerConfig(vocab_size=77, position="rope", ffn="swiglu", norm="rms", n_kv_heads=2)
    assert TransformerConfig(**cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"d_model": 100, "n_heads": 3}, "divisible by n_heads"),
        ({"n_heads": 4, "n_kv_heads": 3}, "divisible by n_kv_heads"),
        ({"position": "nope"}, "unknown position 'nope'; choose one of: learned"),
        ({"ffn": "tanh"}, "unknown ffn"),
        ({"norm": "batch"}, "unknown norm"),
        ({"norm_position": "middle"}, "unknown norm_position"),
        ({"arch": "rnn"}, "arch must be one of"),
        ({"n_layers": 0}, "n_layers must be positive"),
        ({"vocab_size": -1}, "vocab_size must be positive"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"position": "rope", "d_model": 12, "n_heads": 4}, "even d_head"),
        ({"attn_scale": 0.0}, "attn_scale must be positive"),
        ({"rel_buckets": 2}, "rel_buckets must be >= 4"),
        ({"rel_buckets": 32, "rel_max_distance": 16}, r"rel_max_distance \(16\) must exceed"),
        ({"tie_embeddings": False, "scale_tied_head": True}, "scale_tied_head needs"),
    ],
)
def test_invalid_configs_fail_with_a_clear_message(overrides: dict, message: str) -> None:
    kwargs = {"vocab_size": 10, **overrides}
    with pytest.raises(ValueError, match=message):
        TransformerConfig(**kwargs)
