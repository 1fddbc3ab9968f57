"""Position schemes against their reference formulas."""

from __future__ import annotations

import math

import torch

from xformers_lab.core import TransformerConfig
from xformers_lab.core.positions import (
    ALiBi,
    RotaryPositions,
    SinusoidalPositions,
    alibi_slopes,
    apply_rotary,
)


def test_sinusoidal_matches_the_paper_formula() -> None:
    d = 16
    scheme = SinusoidalPositions(TransformerConfig(vocab_size=10, d_model=d, n_heads=2), False)
    pe = scheme.embedding(torch.arange(50))
    for pos in (0, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert math.isclose(pe[pos, 2 * i].item(), math.sin(angle), abs_tol=1e-5)
            assert math.isclose(pe[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-5)


def test_rope_rotates_each_half_pair_by_position_times_frequency() -> None:
    cfg = TransformerConfig(vocab_size=10, d_model=32, n_heads=2, position="rope")
    d, positions = cfg.d_head, torch.arange(6)
    cos, sin = RotaryPositions(cfg, False).rotary(positions)
    x = torch.randn(1, 1, 6, d)
    y = apply_rotary(x, cos, sin)
    for p in range(6):
        for i in range(d // 2):
            theta = p * cfg.rope_theta ** (-2 * i / d)
            a, b = x[0, 0, p, i].item(), x[0, 0, p, i + d // 2].item()
            expected = (
                a * math.cos(theta) - b * math.sin(theta),
                a * math.sin(theta) + b * math.cos(theta),
            )
            assert math.isclose(y[0, 0, p, i].item(), expected[0], abs_tol=1e-5)
            assert math.isclose(y[0, 0, p, i + d // 2].item(), expected[1], abs_tol=1e-5)


def test_rope_scores_depend_only_on_relative_position() -> None:
    cfg = TransformerConfig(vocab_size=10, d_model=32, n_heads=2, position="rope")
    scheme = RotaryPositions(cfg, False)
    q, k = torch.randn(1, 1, 1, cfg.d_head), torch.randn(1, 1, 1, cfg.d_head)

    def score(m: int, n: int) -> float:
        qm = apply_rotary(q, *scheme.rotary(torch.tensor([m])))
        kn = apply_rotary(k, *scheme.rotary(torch.tensor([n])))
        return (qm * kn).sum().item()

    assert math.isclose(score(3, 1), score(103, 101), rel_tol=1e-4, abs_tol=1e-4)
    assert math.isclose(score(10, 4), score(6, 0), rel_tol=1e-4, abs_tol=1e-4)
    assert not math.isclose(score(3, 1), score(3, 2), rel_tol=1e-3)


def test_alibi_slopes_match_the_paper() -> None:
    assert alibi_slopes(8) == [2 ** -(i + 1) for i in range(8)]
    assert alibi_slopes(4) == [2 ** -(2 * (i + 1)) for i in range(4)]
    # 6 heads: the 4 slopes of 4 heads, then every other slope of 8 heads (2^-1, 2^-3)
    assert alibi_slopes(6) == [*alibi_slopes(4), 2**-1, 2**-3]


def test_alibi_bias_is_minus_slope_times_distance() -> None:
    cfg = TransformerConfig(vocab_size=10, d_model=32, n_heads=4, position="alibi")
    bias = ALiBi(cfg, causal=True).score_bias(torch.arange(5), torch.arange(5))
    assert bias.shape == (1, 4, 5, 5)
    slopes = alibi_slopes(4)
    for h in range(4):
        for i in range(5):
            for j in range(5):
                assert math.isclose(bias[0, h, i, j].item(), -slopes[h] * abs(i - j), abs_tol=1e-6)
