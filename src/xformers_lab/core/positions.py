"""Position schemes. Each uses one of three hooks, so BERT, GPT and T5 schemes coexist:

    embedding(positions)        added to token embeddings     learned, sinusoidal
    rotary(positions)           rotates queries and keys      rope
    score_bias(q_pos, k_pos)    added to attention scores     alibi, t5 (relative buckets)

A stack builds its scheme once and calls the hooks once per forward; its layers share the result.
`positions` are integer tensors of shape (T,) or (B, T).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from xformers_lab.core.config import TransformerConfig


class PositionScheme(nn.Module):
    """No-op hooks; a scheme overrides the one it uses."""

    def embedding(self, positions: Tensor) -> Tensor | None:
        """(..., T, D) vectors to add to the token embeddings, or None."""
        return None

    def rotary(self, positions: Tensor) -> tuple[Tensor, Tensor] | None:
        """(cos, sin), each (B|1, 1, T, d_head), to rotate queries and keys, or None."""
        return None

    def score_bias(self, q_positions: Tensor, k_positions: Tensor) -> Tensor | None:
        """(B|1, H, T, S) float bias added to attention scores, or None."""
        return None


class LearnedPositions(PositionScheme):
    """A trained table of `max_seq_len` absolute position vectors (GPT-2, BERT)."""

    def __init__(self, cfg: TransformerConfig, causal: bool) -> None:
        super().__init__()
        self.table = nn.Embedding(cfg.max_seq_len, cfg.d_model)

    def embedding(self, positions: Tensor) -> Tensor:
        return self.table(positions)


class SinusoidalPositions(PositionScheme):
    """Fixed sin/cos vectors (arXiv 1706.03762 sec. 3.5): PE[p, 2i] = sin(p / 10000^(2i/D)),
    PE[p, 2i+1] = cos(same); computed on the fly, so any length works."""

    def __init__(self, cfg: TransformerConfig, causal: bool) -> None:
        super().__init__()
        exponent = torch.arange(0, cfg.d_model, 2, dtype=torch.float32) / cfg.d_model
        self.register_buffer("inv_freq", 10000.0**-exponent, persistent=False)

    def embedding(self, positions: Tensor) -> Tensor:
        angles = positions.float().unsqueeze(-1) * self.inv_freq  # (..., T, D/2)
        return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


class RotaryPositions(PositionScheme):
    """RoPE (arXiv 2104.09864) in the rotate-half layout of GPT-NeoX/Llama: the pair
    (x[i], x[i + d/2]) is rotated by angle p * theta^(-2i/d)."""

    def __init__(self, cfg: TransformerConfig, causal: bool) -> None:
        super().__init__()
        exponent = torch.arange(0, cfg.d_head, 2, dtype=torch.float32) / cfg.d_head
        self.register_buffer("inv_freq", cfg.rope_theta**-exponent, persistent=False)

    def rotary(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        if positions.dim() == 1:
            positions = positions.unsqueeze(0)
        angles = positions.float().unsqueeze(-1) * self.inv_freq  # (B|1, T, d_head/2)
        angles = torch.cat((angles, angles), dim=-1).unsqueeze(1)  # (B|1, 1, T, d_head)
        return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (B, H, T, d_head) queries or keys; the math runs in fp32 for long positions."""
    x32 = x.float()
    first, second = x32.chunk(2, dim=-1)
    rotated = torch.cat((-second, first), dim=-1)
    return (x32 * cos + rotated * sin).to(x.dtype)


class ALiBi(PositionScheme):
    """Attention with linear biases (arXiv 2108.12409): score -= slope_h * |i - j|."""

    def __init__(self, cfg: TransformerConfig, causal: bool) -> None:
        super().__init__()
        slopes = torch.tensor(alibi_slopes(cfg.n_heads), dtype=torch.float32)
        self.register_buffer("slopes", slopes.view(1, -1, 1, 1), persistent=False)

    def score_bias(self, q_positions: Tensor, k_positions: Tensor) -> Tensor:
        q = _batched(q_positions).unsqueeze(-1)  # (B|1, 1, T, 1)
        k = _batched(k_positions).unsqueeze(-2)  # (B|1, 1, 1, S)
        return -self.slopes * (q - k).abs().float()


def alibi_slopes(n_heads: int) -> list[float]:
    """Head slopes from the paper's reference code: a geometric sequence starting at
    2^(-8/n); for n not a power of two, the closest power's slopes plus every other slope of
    twice that power."""

    def power_of_two_slopes(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_heads).is_integer():
        return power_of_two_slopes(n_heads)
    closest = 2 ** math.floor(math.log2(n_heads))
    extra = power_of_two_slopes(2 * closest)[0::2][: n_heads - closest]
    return power_of_two_slopes(closest) + extra


class RelativeBias(PositionScheme):
    """T5's relative position bias (arXiv 1910.10683 sec. 2.1): a learned scalar per (bucket,
    head) added to the scores. Each stack owns one table, shared by its layers (T5 keeps it in
    the stack's first layer); buckets are bidirectional in an encoder and causal in a decoder."""

    def __init__(self, cfg: TransformerConfig, causal: bool) -> None:
        super().__init__()
        self.bidirectional = not causal
        self.num_buckets, self.max_distance = cfg.rel_buckets, cfg.rel_max_distance
        self.table = nn.Embedding(cfg.rel_buckets, cfg.n_heads)

    def score_bias(self, q_positions: Tensor, k_positions: Tensor) -> Tensor:
        q = _batched(q_positions).unsqueeze(-1)  # (B|1, 1, T, 1)
        k = _batched(k_positions).unsqueeze(-2)  # (B|1, 1, 1, S)
        buckets = relative_position_bucket(
            k - q,
            bidirectional=self.bidirectional,
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
        )
        return self.table(buckets.squeeze(1)).permute(0, 3, 1, 2)  # (B|1, H, T, S)


def relative_position_bucket(
    relative_position: Tensor, *, bidirectional: bool, num_buckets: int, max_distance: int
) -> Tensor:
    """Bucket of each relative position (key minus query), as Mesh TF's and HF T5's
    `_relative_position_bucket`: one bucket per distance below `max_exact`, log-spaced buckets
    up to `max_distance`, and the last bucket beyond. Bidirectional buckets give half the buckets
    to keys after the query; causal ones put every later key in bucket 0 (it is masked anyway)."""
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    # float32 as in the references, so distances on a bucket boundary land in the same bucket
    log_ratio = torch.log(distance.float().clamp(min=1) / max_exact) / math.log(
        max_distance / max_exact
    )
    large = (max_exact + (log_ratio * (num_buckets - max_exact)).long()).clamp(max=num_buckets - 1)
    return buckets + torch.where(distance < max_exact, distance, large)


def _batched(positions: Tensor) -> Tensor:
    """(T,) or (B, T) positions as (B|1, 1, T) for broadcasting over heads."""
    if positions.dim() == 1:
        positions = positions.unsqueeze(0)
    return positions.unsqueeze(1)


POSITIONS: dict[str, type[PositionScheme]] = {
    "learned": LearnedPositions,
    "sinusoidal": SinusoidalPositions,
    "rope": RotaryPositions,
    "alibi": ALiBi,
    "t5": RelativeBias,
}


def make_positions(cfg: TransformerConfig, causal: bool) -> PositionScheme:
    """The configured scheme for one stack (`causal` matters to relative-bias schemes)."""
    return POSITIONS[cfg.position](cfg, causal)
