"""Fill-mask: an encoder's top candidates, with probabilities, for each `<mask>` of a text.

The text is framed as `<cls> text <sep>` as in pretraining. A `<mask>` stands for one token of
the checkpoint's tokenizer: one UTF-8 byte with `tokenizer=byte` (a candidate that is part of a
multi-byte character shows as U+FFFD), one character with `tokenizer=char`, one piece with the
sentencepiece tokenizers.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.errors import UserError


class Candidate(NamedTuple):
    """One way to fill a mask: the token's text and the model's probability for it."""

    token: str
    prob: float


@torch.no_grad()
def fill_mask(
    model: nn.Module, tokenizer: Tokenizer, text: str, top_k: int = 5
) -> list[list[Candidate]]:
    """For each `<mask>` in `text`, in order, its `top_k` candidates, most probable first.

    Raises `UserError` (one line) for a text without `<mask>`, one longer than the model takes,
    or a model that is not a masked LM.
    """
    if not hasattr(model, "mlm_logits"):
        raise UserError(f"fill-mask needs a masked LM (model=bert), not {type(model).__name__}")
    if top_k < 1:
        raise UserError(f"top_k must be at least 1, got {top_k}")
    ids = [tokenizer.cls_id, *tokenizer.encode(text, parse_special=True), tokenizer.sep_id]
    positions = [i for i, id_ in enumerate(ids) if id_ == tokenizer.mask_id]
    if not positions:
        mask = tokenizer.specials[tokenizer.mask_id]
        raise UserError(f"the text has no {mask}; write {mask} where a token is to be predicted")
    max_len = model.config.max_seq_len
    if len(ids) > max_len:
        raise UserError(
            f"the text is {len(ids)} tokens with <cls> and <sep>, more than the model's "
            f"max_seq_len={max_len}; shorten it"
        )
    device = next(model.parameters()).device
    hidden = model.hidden_states(torch.tensor([ids], device=device))  # (1, T, D)
    logits = model.mlm_logits(hidden[0, positions])  # (n_masks, V_padded)
    probs = logits.float().softmax(-1)[:, : tokenizer.vocab_size]
    top = probs.topk(min(top_k, tokenizer.vocab_size), dim=-1)
    return [
        [
            Candidate(tokenizer.decode([i]), p)
            for i, p in zip(ids_.tolist(), ps.tolist(), strict=True)
        ]
        for ids_, ps in zip(top.indices, top.values, strict=True)
    ]


def render(text: str, fills: list[list[Candidate]], mask_token: str = "<mask>") -> str:
    """A report of `fills`: each mask's candidates, then the text with every top candidate in."""
    lines = []
    for n, candidates in enumerate(fills, start=1):
        lines.append(f"{mask_token} {n} of {len(fills)}:")
        lines += [f"  {c.prob:7.4f}  {c.token!r}" for c in candidates]
    filled = text
    for candidates in fills:
        filled = filled.replace(mask_token, candidates[0].token, 1)
    lines.append(f"top-1 fill: {filled!r}")
    return "\n".join(lines)
