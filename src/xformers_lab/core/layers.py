"""Norms (LayerNorm, RMSNorm) and the position-wise feed-forward (plain or gated)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from xformers_lab.core.config import TransformerConfig


class RMSNorm(nn.Module):
    """Root-mean-square norm (arXiv 1910.07467): no mean subtraction, no bias; computed in fp32."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


def _layer_norm(cfg: TransformerConfig) -> nn.Module:
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=cfg.bias)


def _rms_norm(cfg: TransformerConfig) -> nn.Module:
    return RMSNorm(cfg.d_model, eps=cfg.norm_eps)


NORMS: dict[str, Callable[[TransformerConfig], nn.Module]] = {
    "layer": _layer_norm,
    "rms": _rms_norm,
}


def make_norm(cfg: TransformerConfig) -> nn.Module:
    """The configured norm over `d_model`."""
    return NORMS[cfg.norm](cfg)


@dataclass(frozen=True)
class Activation:
    """A feed-forward nonlinearity; `gated` ones multiply act(x W) by a second projection x V."""

    fn: Callable[[Tensor], Tensor]
    gated: bool


def _gelu_tanh(x: Tensor) -> Tensor:
    return F.gelu(x, approximate="tanh")


FFN_ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(F.relu, gated=False),  # original Transformer, T5 v1.0
    "gelu": Activation(F.gelu, gated=False),  # BERT (exact erf form)
    "gelu_tanh": Activation(_gelu_tanh, gated=False),  # GPT-2's tanh approximation
    "swiglu": Activation(F.silu, gated=True),  # Llama (arXiv 2002.05202)
    "geglu": Activation(_gelu_tanh, gated=True),  # T5 v1.1 "gated-gelu" (tanh form, as HF)
}


class FeedForward(nn.Module):
    """x -> W_out act(W_in x), or W_out (act(W_gate x) * W_up x) with the two inputs fused."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        activation = FFN_ACTIVATIONS[cfg.ffn]
        self.act = activation.fn
        self.gated = activation.gated
        n_in = 2 * cfg.d_ff if self.gated else cfg.d_ff
        self.w_in = nn.Linear(cfg.d_model, n_in, bias=cfg.bias)  # [gate | up] when gated
        self.w_out = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.bias)
        self.w_out.is_residual_projection = True

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D)
        h = self.w_in(x)
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            h = self.act(gate) * up
        else:
            h = self.act(h)
        return self.w_out(h)
