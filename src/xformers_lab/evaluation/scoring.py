"""Log-likelihoods of continuations given contexts, a batch of (context, continuation) token
pairs per forward pass.

A decoder reads `context + continuation[:-1]` and predicts every continuation token; an
encoder-decoder reads the context with its encoder and scores the continuation on the decoder
side, after its start token. The LM head and the log-softmax run on the continuation positions
only, never on the (B, T, V) logits of the whole batch; identical decoder inputs (the choices
of one token of a multiple-choice question) run once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

Pair = tuple[list[int], list[int]]
"""(context ids, continuation ids); the continuation is not empty."""


@dataclass(frozen=True)
class Score:
    """The continuation's summed log-probability (nats) and whether greedy decoding from the
    context would produce it, token by token."""

    logprob: float
    greedy: bool


@torch.no_grad()
def score_pairs(model: nn.Module, pairs: list[Pair], max_len: int, start_id: int) -> list[Score]:
    """`Score` of each pair; inputs longer than `max_len` lose their oldest context tokens.

    start_id: the first decoder token of an encoder-decoder (its decoder start, pad for T5).
    """
    if model.config.arch == "encoder_decoder":
        hidden, targets = _encoder_decoder_states(model, pairs, max_len, start_id)
    else:
        hidden, targets = _decoder_states(model, pairs, max_len)
    logprobs = model.head(hidden).float().log_softmax(dim=-1)  # (N, V): continuation tokens
    picked = logprobs.gather(1, targets[:, None]).squeeze(1)
    hits = logprobs.argmax(dim=-1) == targets
    scores, start = [], 0
    for _, continuation in pairs:
        end = start + len(continuation)
        scores.append(Score(float(picked[start:end].sum()), bool(hits[start:end].all())))
        start = end
    return scores


def _decoder_states(model: nn.Module, pairs: list[Pair], max_len: int) -> tuple[Tensor, Tensor]:
    """Final hidden states at the positions predicting each continuation token (N, D), and
    those tokens (N,)."""
    rows = [(context + continuation)[-(max_len + 1) :][:-1] for context, continuation in pairs]
    unique = {row: i for i, row in enumerate(dict.fromkeys(map(tuple, rows)))}
    ids = _right_pad([list(row) for row in unique], _device(model))
    hidden = model.hidden_states(ids)  # (U, T, D); causal, so right padding changes nothing
    # choices of one token share their input row (the context): it runs once for all of them
    picked = [
        hidden[unique[tuple(row)], len(row) - len(continuation) : len(row)]
        for row, (_, continuation) in zip(rows, pairs, strict=True)
    ]
    return torch.cat(picked), _targets(pairs, ids.device)


def _encoder_decoder_states(
    model: nn.Module, pairs: list[Pair], max_len: int, start_id: int
) -> tuple[Tensor, Tensor]:
    """As `_decoder_states`, the context read by the encoder, the continuation by the decoder."""
    device = _device(model)
    contexts = [context[-max_len:] for context, _ in pairs]
    ids = _right_pad(contexts, device)
    mask = _right_pad([[1] * len(c) for c in contexts], device)
    decoder_ids = _right_pad([[start_id, *cont[:-1]] for _, cont in pairs], device)
    hidden = model.hidden_states(ids, attention_mask=mask, decoder_input_ids=decoder_ids)
    picked = [hidden[i, : len(cont)] for i, (_, cont) in enumerate(pairs)]
    return torch.cat(picked), _targets(pairs, device)


def _targets(pairs: list[Pair], device: torch.device) -> Tensor:
    return torch.tensor([t for _, cont in pairs for t in cont], dtype=torch.long, device=device)


def _right_pad(rows: list[list[int]], device: torch.device) -> Tensor:
    """(B, longest) ids padded on the right with 0; callers mask or ignore the padding."""
    width = max(len(r) for r in rows)
    return torch.tensor([r + [0] * (width - len(r)) for r in rows], device=device)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
