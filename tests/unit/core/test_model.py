"""Model shells: every registered part builds, trains a step, and behaves at the edges."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from xformers_lab.core import TransformerConfig, build_model, count_parameters
from xformers_lab.core.layers import FFN_ACTIVATIONS, NORMS, RMSNorm
from xformers_lab.core.positions import POSITIONS


@pytest.mark.parametrize(
    ("position", "ffn", "norm", "norm_position"),
    list(itertools.product(POSITIONS, FFN_ACTIVATIONS, NORMS, ["pre", "post"])),
)
def test_every_part_combination_runs_forward_and_backward(
    position: str, ffn: str, norm: str, norm_position: str
) -> None:
    cfg = TransformerConfig(
        vocab_size=70, d_model=32, n_heads=4, n_kv_heads=2, n_layers=2, max_seq_len=16,
        position=position, ffn=ffn, norm=norm, norm_position=norm_position, dropout=0.1,
    )  # fmt: skip
    model = build_model(cfg)
    logits = model(torch.randint(0, 70, (3, 16)))
    assert logits.shape == (3, 16, cfg.padded_vocab_size)
    logits[..., :70].logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_padded_vocabulary_is_never_predicted() -> None:
    cfg = TransformerConfig(vocab_size=70, d_model=32, n_heads=4)
    logits = build_model(cfg)(torch.randint(0, 70, (2, 5)))
    assert cfg.padded_vocab_size == 128
    assert torch.isinf(logits[..., 70:]).all() and torch.isfinite(logits[..., :70]).all()
    assert (logits.softmax(-1)[..., 70:] == 0).all()


def test_tied_head_shares_the_embedding_and_untied_does_not() -> None:
    tied = build_model(TransformerConfig(vocab_size=64, d_model=32, n_heads=4))
    untied = build_model(
        TransformerConfig(vocab_size=64, d_model=32, n_heads=4, tie_embeddings=False)
    )
    assert tied.head.weight is tied.embed.weight
    assert untied.head.weight is not untied.embed.weight
    assert count_parameters(untied) - count_parameters(tied) == 64 * 32


def test_gpt2_init_scales_residual_projections() -> None:
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=64, d_model=256, n_heads=4, n_layers=8)
    model = build_model(cfg)
    block = model.decoder.blocks[0]
    assert block.attn.qkv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual_std = 0.02 / math.sqrt(2 * 8)
    assert block.attn.out.weight.std().item() == pytest.approx(residual_std, rel=0.05)
    assert block.ffn.w_out.weight.std().item() == pytest.approx(residual_std, rel=0.05)
    assert torch.count_nonzero(block.attn.qkv.bias) == 0


def test_rms_norm_matches_its_formula() -> None:
    norm = RMSNorm(8, eps=1e-6)
    x = torch.randn(3, 8)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(norm(x), expected)


def test_too_long_input_is_rejected_with_a_clear_message() -> None:
    model = build_model(TransformerConfig(vocab_size=64, d_model=32, n_heads=4, max_seq_len=8))
    with pytest.raises(ValueError, match=r"exceeds model\.max_seq_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_model_rebuilds_from_its_saved_config() -> None:
    cfg = TransformerConfig(vocab_size=64, d_model=32, n_heads=4, position="alibi", ffn="geglu")
    model = build_model(cfg)
    clone = build_model(TransformerConfig(**cfg.to_dict()))
    clone.load_state_dict(model.state_dict())
    ids = torch.randint(0, 64, (2, 6))
    torch.testing.assert_close(model(ids), clone(ids))
