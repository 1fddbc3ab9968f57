"""Next-token choice: repetition penalty, temperature, top-k and top-p (nucleus) filtering."""

from __future__ import annotations

import torch
from torch import Tensor


def repetition_penalty(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """CTRL's penalty (arXiv 1909.05858): logits of tokens already in the sequence are divided by
    `penalty` when positive and multiplied when negative. logits (B, V), seen (B, L) ids."""
    if penalty == 1.0:
        return logits
    picked = logits.gather(1, seen)
    picked = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits.scatter(1, seen, picked)


def top_k_filter(logits: Tensor, k: int | None) -> Tensor:
    """Keep the k largest logits of each row; the rest become -inf."""
    if k is None or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float | None) -> Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches `p` (arXiv
    1904.09751): a token stays while the mass of the tokens ranked above it is below p."""
    if p is None or p >= 1.0:
        return logits
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    drop_sorted = mass_before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def choose_next(
    logits: Tensor,
    *,
    do_sample: bool,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> Tensor:
    """(B, V) logits -> (B,) next ids: argmax, or a sample after temperature, top-k, top-p."""
    if not do_sample or temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = top_p_filter(top_k_filter(logits / temperature, top_k), top_p)
    probs = logits.float().softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
