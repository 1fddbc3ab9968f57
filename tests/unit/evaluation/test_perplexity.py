"""Sliding windows score every token once with the context the stride allows; the corpus
figures equal a direct cross-entropy where a document fits one window, and the closed form
ln(V) for a model that predicts nothing."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from xformers_lab.evaluation.perplexity import corpus_score, windows

from .conftest import tiny_model

TEXT = "def f(x):\n    return x + 1\n"


@pytest.mark.parametrize(("n", "max_len", "stride"), [(5, 8, 8), (30, 8, 8), (30, 8, 3), (9, 8, 1)])
def test_windows_score_every_token_once_with_up_to_max_len_context(n, max_len, stride) -> None:
    ids = list(range(100, 100 + n))
    pairs = windows(ids, max_len, stride)
    scored = [t for _, cont in pairs for t in cont]
    assert scored == ids[1:]
    for context, cont in pairs:
        assert len(context) >= 1 and len(context) + len(cont) <= max_len + 1
    starts = [ids.index(context[0]) for context, _ in pairs]
    assert all(b - a == stride for a, b in itertools.pairwise(starts))


def test_one_window_equals_the_cross_entropy_of_a_forward_pass() -> None:
    model, tokenizer = tiny_model("decoder", max_seq_len=64)
    score = corpus_score(model, tokenizer, [TEXT], stride=64, batch_size=None, max_batch_tokens=999)
    ids = torch.tensor([[tokenizer.document_start_id, *tokenizer.encode(TEXT)]])
    with torch.no_grad():
        logits = model(ids[:, :-1])[0]
    expected = torch.nn.functional.cross_entropy(logits.float(), ids[0, 1:], reduction="sum")
    assert math.isclose(score.nats, float(expected), rel_tol=1e-5)
    assert score.tokens == len(TEXT) and score.bytes == len(TEXT) and score.windows == 1
    assert math.isclose(score.perplexity, math.exp(float(expected) / len(TEXT)), rel_tol=1e-5)


def test_a_smaller_stride_equals_the_perplexity_guides_loop() -> None:
    """transformers' guide: windows of max_len inputs every `stride` tokens; labels of the
    tokens already scored are ignored."""
    model, tokenizer = tiny_model("decoder", max_seq_len=8)
    text = TEXT * 2
    ids = torch.tensor([tokenizer.document_start_id, *tokenizer.encode(text)])
    nats, prev_end = 0.0, 1
    for begin in range(0, len(ids), 3):
        end = min(begin + 9, len(ids))
        window = ids[begin:end]
        with torch.no_grad():
            logits = model(window[None, :-1])[0]
        losses = torch.nn.functional.cross_entropy(logits, window[1:], reduction="none")
        nats += float(losses[prev_end - begin - 1 :].sum())
        prev_end = end
        if end == len(ids):
            break
    score = corpus_score(model, tokenizer, [text], stride=3, batch_size=4, max_batch_tokens=0)
    assert math.isclose(score.nats, nats, rel_tol=1e-5) and score.tokens == len(text)
    disjoint = corpus_score(model, tokenizer, [text], stride=8, batch_size=4, max_batch_tokens=0)
    assert disjoint.windows < score.windows and disjoint.nats != pytest.approx(nats)


def test_a_model_that_predicts_nothing_has_loss_ln_v() -> None:
    model, tokenizer = tiny_model("decoder", max_seq_len=16)
    with torch.no_grad():
        model.head.weight.zero_()  # tied: every logit is 0 over the real vocabulary
    docs = ["héllo wörld\n", TEXT, ""]
    score = corpus_score(model, tokenizer, docs, stride=16, batch_size=None, max_batch_tokens=64)
    vocab = tokenizer.vocab_size
    n_bytes = sum(len(d.encode()) for d in docs)
    assert score.documents == 2 and score.tokens == n_bytes  # byte tokens: one per byte
    assert math.isclose(score.loss, math.log(vocab), rel_tol=1e-6)
    assert math.isclose(score.bits_per_byte, math.log2(vocab), rel_tol=1e-6)
