"""Position schemes. Each uses one of three hooks, so BERT, GPT and T5 schemes coexist:

    embedding(positions)        added to token embeddings     learned, sinusoidal
    rotary(positions)           rotates queries and keys      rope
    score_bias(q_pos, k_pos)    added to attention scores     alibi (and T5's relative buckets)

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
}


def make_positions(cfg: TransformerConfig, causal: bool) -> PositionScheme:
    """The configured scheme for one stack (`causal` matters to relative-bias schemes)."""
    return POSITIONS[cfg.position](cfg, causal)
