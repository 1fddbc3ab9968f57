"""Position schemes against their reference formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xformers_lab.core import TransformerConfig
from xformers_lab.core.positions import (
    ALiBi,
    RelativeBias,
    RotaryPositions,
    SinusoidalPositions,
    alibi_slopes,
    apply_rotary,
    relative_position_bucket,
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


def reference_t5_bucket(
    relative_position: int, bidirectional: bool, num_buckets: int, max_distance: int
) -> int:
    """Mesh TF `_relative_position_bucket` written out for one int, in float32 as the original
    (n = query - key; bidirectional buckets split by sign; exact below max_exact, log-spaced
    up to max_distance, clamped to the last bucket)."""
    bucket, n = 0, -relative_position
    if bidirectional:
        num_buckets //= 2
        bucket += num_buckets if n < 0 else 0
        n = abs(n)
    else:
        n = max(n, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return bucket + n
    log_ratio = np.log(np.float32(n) / np.float32(max_exact)) / np.float32(
        math.log(max_distance / max_exact)
    )
    large = max_exact + int(np.float32(log_ratio) * np.float32(num_buckets - max_exact))
    return bucket + min(large, num_buckets - 1)


DISTANCES = [-200, -128, -127, -64, -63, -32, -16, -15, -8, -7, -1, 0, 1, 7, 8, 15, 16, 64, 200]
# T5's defaults (32 buckets, max distance 128), by hand: exact buckets for |d| < 8 (16 causal),
# then 8 + floor(2 log2(|d| / 8)) bidirectional, 16 + floor(16/3 log2(d / 16)) causal, capped.
BIDIRECTIONAL = [15, 15, 15, 14, 13, 12, 10, 9, 8, 7, 1, 0, 17, 23, 24, 25, 26, 30, 31]
CAUSAL = [31, 31, 31, 26, 26, 21, 16, 15, 8, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(("bidirectional", "expected"), [(True, BIDIRECTIONAL), (False, CAUSAL)])
def test_t5_buckets_of_the_default_table(bidirectional: bool, expected: list[int]) -> None:
    buckets = relative_position_bucket(
        torch.tensor(DISTANCES), bidirectional=bidirectional, num_buckets=32, max_distance=128
    )
    assert buckets.tolist() == expected
    assert [reference_t5_bucket(d, bidirectional, 32, 128) for d in DISTANCES] == expected


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize(("num_buckets", "max_distance"), [(32, 128), (16, 64), (8, 20), (33, 300)])
def test_t5_buckets_match_the_reference_formula(
    bidirectional: bool, num_buckets: int, max_distance: int
) -> None:
    distances = torch.arange(-400, 401)
    buckets = relative_position_bucket(
        distances, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
    expected = [
        reference_t5_bucket(d, bidirectional, num_buckets, max_distance) for d in distances.tolist()
    ]
    assert buckets.tolist() == expected
    assert buckets.min() >= 0 and buckets.max() < num_buckets


@pytest.mark.parametrize("bidirectional", [True, False])
def test_t5_buckets_match_hugging_face(bidirectional: bool) -> None:
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    distances = torch.arange(-1000, 1001)
    ours = relative_position_bucket(
        distances, bidirectional=bidirectional, num_buckets=32, max_distance=128
    )
    theirs = t5.T5Attention._relative_position_bucket(distances, bidirectional, 32, 128)
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("causal", [False, True])
def test_t5_bias_looks_up_one_learned_scalar_per_bucket_and_head(causal: bool) -> None:
    cfg = TransformerConfig(vocab_size=10, d_model=32, n_heads=4, position="t5", rel_buckets=8)
    scheme = RelativeBias(cfg, causal=causal)
    q_positions, k_positions = torch.arange(3, 6), torch.arange(6)  # queries are the last 3 keys
    bias = scheme.score_bias(q_positions, k_positions)
    assert bias.shape == (1, 4, 3, 6)
    for i, q in enumerate(q_positions.tolist()):
        for j, k in enumerate(k_positions.tolist()):
            bucket = reference_t5_bucket(k - q, not causal, 8, cfg.rel_max_distance)
            torch.testing.assert_close(bias[0, :, i, j], scheme.table.weight[bucket])
