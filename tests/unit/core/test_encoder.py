"""Encoder shell (BERT): attention sees both directions, padding is invisible, the MLM head is
BERT's and gives the same logits on gathered positions as everywhere."""

from __future__ import annotations

import itertools

import pytest
import torch

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.core.encoder import EncoderLM
from xformers_lab.core.positions import POSITIONS

VOCAB = 70


def encoder(**overrides: object) -> EncoderLM:
    torch.manual_seed(0)
    fields = {"vocab_size": VOCAB, "arch": "encoder", "d_model": 32, "n_heads": 4, "n_layers": 2}
    model = build_model(TransformerConfig(**{**fields, **overrides}))  # type: ignore[arg-type]
    assert isinstance(model, EncoderLM)
    return model.eval()


VARIANTS = list(itertools.product(POSITIONS, ["pre", "post"]))


@pytest.mark.parametrize(("position", "norm_position"), VARIANTS)
def test_every_position_sees_the_future(position: str, norm_position: str) -> None:
    model = encoder(position=position, norm_position=norm_position)
    ids = torch.randint(7, VOCAB, (2, 10))
    changed = ids.clone()
    changed[:, -1] = (ids[:, -1] - 7 + 1) % (VOCAB - 7) + 7  # another regular token
    with torch.no_grad():
        before, after = model.hidden_states(ids), model.hidden_states(changed)
    moved = (before - after).abs().amax(dim=-1)  # (B, T)
    assert (moved[:, :-1] > 1e-6).all(), "an earlier position did not see the later change"


@pytest.mark.parametrize(("position", "norm_position"), VARIANTS)
def test_padding_is_invisible_to_real_positions(position: str, norm_position: str) -> None:
    model = encoder(position=position, norm_position=norm_position)
    ids = torch.randint(7, VOCAB, (2, 8))
    padded = torch.cat([ids, torch.zeros(2, 5, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(2, 8), torch.zeros(2, 5)], dim=1).long()
    padded_garbage = padded.clone()
    padded_garbage[:, 8:] = torch.randint(7, VOCAB, (2, 5))  # what sits under the mask is moot
    with torch.no_grad():
        alone = model.hidden_states(ids)
        with_padding = model.hidden_states(padded, attention_mask=mask)
        with_garbage = model.hidden_states(padded_garbage, attention_mask=mask)
    torch.testing.assert_close(with_padding[:, :8], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(with_garbage[:, :8], alone, atol=1e-5, rtol=1e-5)


def test_padding_differs_per_row() -> None:
    model = encoder()
    short, long_ = torch.randint(7, VOCAB, (1, 4)), torch.randint(7, VOCAB, (1, 9))
    batch = torch.zeros(2, 9, dtype=torch.long)
    batch[0, :4], batch[1] = short[0], long_[0]
    mask = (torch.arange(9) < torch.tensor([[4], [9]])).long()
    with torch.no_grad():
        out = model.hidden_states(batch, attention_mask=mask)
        torch.testing.assert_close(out[0, :4], model.hidden_states(short)[0], atol=1e-5, rtol=0)
        torch.testing.assert_close(out[1], model.hidden_states(long_)[0], atol=1e-5, rtol=0)


def test_head_on_gathered_positions_equals_the_full_head() -> None:
    model = encoder()
    ids = torch.randint(7, VOCAB, (3, 12))
    positions = torch.tensor([[1, 5, 7], [0, 2, 11], [3, 3, 9]])
    with torch.no_grad():
        full = model(ids)  # (B, T, V)
        hidden = model.hidden_states(ids)
        gathered = hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        sparse = model.mlm_logits(gathered)  # (B, K, V)
    expected = full.gather(1, positions.unsqueeze(-1).expand(-1, -1, full.shape[-1]))
    torch.testing.assert_close(sparse, expected)


def test_mlm_head_is_berts_with_a_tied_decoder_and_a_bias() -> None:
    model = encoder()
    head = model.head
    assert head.decoder.weight is model.embed.weight
    assert head.dense.weight.shape == (32, 32) and head.bias.shape == (128,)
    assert isinstance(head.norm, torch.nn.LayerNorm)
    logits = model(torch.randint(7, VOCAB, (2, 5)))
    assert torch.isinf(logits[..., VOCAB:]).all() and torch.isfinite(logits[..., :VOCAB]).all()
    untied = encoder(tie_embeddings=False)
    assert untied.head.decoder.weight is not untied.embed.weight


def test_post_norm_bert_with_embedding_norm_trains_a_step() -> None:
    model = encoder(norm_position="post", embedding_norm=True, dropout=0.1).train()
    logits = model(torch.randint(7, VOCAB, (2, 6)))
    logits[..., :VOCAB].logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
