"""Scores of (context, continuation) pairs equal the model's own log-softmax read off a full
forward pass, batched or alone, for decoders and encoder-decoders."""

from __future__ import annotations

import math

import pytest
import torch

from xformers_lab.evaluation.scoring import score_pairs

from .conftest import tiny_model

PAIRS = [([20, 21, 22, 23], [24, 25]), ([30], [31, 32, 33, 34]), ([40, 41], [42])]
START = 0


def reference(model: torch.nn.Module, context: list[int], continuation: list[int]) -> tuple:
    """Summed log-probability and greedy flag from one unpadded forward pass."""
    with torch.no_grad():
        if model.config.arch == "encoder_decoder":
            decoder_ids = torch.tensor([[START, *continuation[:-1]]])
            logits = model(torch.tensor([context]), decoder_input_ids=decoder_ids)[0]
        else:
            ids = torch.tensor([context + continuation[:-1]])
            logits = model(ids)[0, len(context) - 1 :]
    logprobs = logits.float().log_softmax(-1)
    target = torch.tensor(continuation)
    picked = logprobs.gather(1, target[:, None]).sum()
    return float(picked), bool((logprobs.argmax(-1) == target).all())


@pytest.mark.parametrize("arch", ["decoder", "encoder_decoder"])
def test_batched_scores_equal_one_forward_pass_each(arch: str) -> None:
    model, _ = tiny_model(arch)
    scores = score_pairs(model, PAIRS, max_len=32, start_id=START)
    for score, (context, continuation) in zip(scores, PAIRS, strict=True):
        logprob, greedy = reference(model, context, continuation)
        assert math.isclose(score.logprob, logprob, abs_tol=1e-5)
        assert score.greedy == greedy
    alone = [score_pairs(model, [pair], 32, START)[0] for pair in PAIRS]
    assert [s.logprob for s in alone] == pytest.approx([s.logprob for s in scores], abs=1e-5)


def test_greedy_is_true_for_the_models_own_argmax() -> None:
    model, _ = tiny_model("decoder")
    context = [20, 21, 22]
    with torch.no_grad():
        best = int(model(torch.tensor([context]))[0, -1].argmax())
    assert score_pairs(model, [(context, [best])], 32, START)[0].greedy
    other = (best + 1) % 200 + 7
    assert not score_pairs(model, [(context, [other])], 32, START)[0].greedy


def test_a_long_decoder_input_keeps_its_last_max_len_tokens() -> None:
    model, _ = tiny_model("decoder", max_seq_len=8)
    context, continuation = list(range(10, 30)), [40, 41]
    kept = (context + continuation)[-9:]  # max_len + 1 tokens: 8 read, the last one predicted
    truncated = score_pairs(model, [(context, continuation)], 8, START)[0]
    assert math.isclose(
        truncated.logprob, reference(model, kept[:-2], continuation)[0], abs_tol=1e-5
    )


def test_one_token_choices_of_one_context_share_a_row_and_keep_their_scores() -> None:
    model, _ = tiny_model("decoder")
    context = [20, 21, 22]
    choices = [([*context], [t]) for t in (30, 31, 32)] + [([*context], [30, 40])]
    scores = score_pairs(model, choices, 32, START)
    for score, (ctx, cont) in zip(scores, choices, strict=True):
        assert math.isclose(score.logprob, reference(model, ctx, cont)[0], abs_tol=1e-5)
