"""Encoder-decoder (T5): causal decoder, bidirectional encoder, cross-attention and its padding
mask, one relative-bias table per stack, and the T5 knobs (attn_scale, scaled tied head)."""

from __future__ import annotations

import pytest
import torch

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.core.encoder_decoder import EncoderDecoderLM
from xformers_lab.core.positions import POSITIONS


def t5(**overrides) -> TransformerConfig:
    """A tiny T5 v1.1: relative bias, RMSNorm, no biases, gated GELU, untied head."""
    return TransformerConfig(
        **{
            "vocab_size": 60,
            "arch": "encoder_decoder",
            "d_model": 32,
            "n_heads": 4,
            "n_layers": 2,
            "n_decoder_layers": 3,
            "max_seq_len": 32,
            "position": "t5",
            "rel_buckets": 8,
            "rel_max_distance": 16,
            "norm": "rms",
            "bias": False,
            "ffn": "geglu",
            "tie_embeddings": False,
            "attn_scale": 1.0,
            **overrides,
        }
    )


def model_of(cfg: TransformerConfig, seed: int = 0) -> EncoderDecoderLM:
    torch.manual_seed(seed)
    model = build_model(cfg).eval()
    assert isinstance(model, EncoderDecoderLM)
    return model


def ids(*shape: int) -> torch.Tensor:
    return torch.randint(7, 60, shape)


@pytest.mark.parametrize("position", list(POSITIONS))
def test_every_position_scheme_trains_a_step(position: str) -> None:
    model = build_model(t5(position=position, dropout=0.1))
    logits = model(ids(2, 10), decoder_input_ids=ids(2, 6))
    assert logits.shape == (2, 6, model.config.padded_vocab_size)
    assert torch.isinf(logits[..., 60:]).all() and torch.isfinite(logits[..., :60]).all()
    logits[..., :60].logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("position", ["t5", "learned"])
def test_decoder_cannot_see_future_target_tokens(position: str) -> None:
    model = model_of(t5(position=position))
    inputs, targets = ids(2, 10), ids(2, 8)
    changed = targets.clone()
    changed[:, 5:] = ids(2, 3)
    before = model(inputs, decoder_input_ids=targets)
    after = model(inputs, decoder_input_ids=changed)
    torch.testing.assert_close(before[:, :5], after[:, :5])
    assert not torch.allclose(before[:, 5:], after[:, 5:])


def test_every_decoder_position_sees_the_whole_encoder_input() -> None:
    model = model_of(t5())
    inputs, targets = ids(1, 10), ids(1, 4)
    changed = inputs.clone()
    changed[0, -1] = (inputs[0, -1] - 7 + 1) % 53 + 7  # another real token
    before = model(inputs, decoder_input_ids=targets)
    after = model(changed, decoder_input_ids=targets)
    assert not torch.allclose(before[:, 0], after[:, 0])


def test_cross_attention_respects_the_encoder_padding_mask() -> None:
    """Right-padding the encoder input, with any tokens under the mask, changes nothing."""
    model = model_of(t5())
    inputs, targets = ids(1, 7), ids(1, 5)
    alone = model(inputs, decoder_input_ids=targets)
    mask = torch.tensor([[1] * 7 + [0] * 5])
    for filler in (torch.zeros(1, 5, dtype=torch.long), ids(1, 5)):
        padded = torch.cat([inputs, filler], dim=1)
        with_pad = model(padded, attention_mask=mask, decoder_input_ids=targets)
        torch.testing.assert_close(alone, with_pad, atol=1e-5, rtol=1e-5)
    unmasked = model(padded, decoder_input_ids=targets)
    assert not torch.allclose(alone, unmasked, atol=1e-3)


def test_a_padded_row_equals_the_row_alone_in_a_batch() -> None:
    model = model_of(t5())
    short, long_ = ids(1, 6), ids(1, 10)
    targets = ids(2, 4)
    batch = torch.cat([torch.cat([short, torch.zeros(1, 4, dtype=torch.long)], 1), long_])
    mask = torch.tensor([[1] * 6 + [0] * 4, [1] * 10])
    both = model(batch, attention_mask=mask, decoder_input_ids=targets)
    torch.testing.assert_close(
        both[:1], model(short, decoder_input_ids=targets[:1]), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(
        both[1:], model(long_, decoder_input_ids=targets[1:]), atol=1e-5, rtol=1e-5
    )


def test_encode_then_decode_is_forward() -> None:
    model = model_of(t5())
    inputs, targets = ids(2, 9), ids(2, 5)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    memory = model.encode(inputs, mask)
    assert memory.shape == (2, 9, 32)
    torch.testing.assert_close(
        model.decode(targets, memory, memory_mask=mask),
        model(inputs, attention_mask=mask, decoder_input_ids=targets),
    )


def test_each_stack_owns_one_relative_bias_table() -> None:
    model = model_of(t5())
    tables = [name for name, _ in model.named_parameters() if "positions" in name]
    assert tables == ["encoder.positions.table.weight", "decoder.positions.table.weight"]
    assert model.encoder.positions.bidirectional and not model.decoder.positions.bidirectional
    assert model.decoder.positions.table.weight.shape == (8, 4)


def test_embedding_is_shared_and_head_tied_or_not() -> None:
    untied, tied = model_of(t5()), model_of(t5(tie_embeddings=True))
    assert tied.head.weight is tied.embed.weight
    assert untied.head.weight is not untied.embed.weight
    assert all(b.cross is not None for b in untied.decoder.blocks)
    assert all(b.cross is None for b in untied.encoder.blocks)
    assert (len(untied.encoder.blocks), len(untied.decoder.blocks)) == (2, 3)


def test_t5_v11_has_no_biases() -> None:
    model = model_of(t5())
    assert not [name for name, _ in model.named_parameters() if name.endswith("bias")]


def test_attn_scale_is_the_factor_on_the_scores() -> None:
    """attn_scale = 1/sqrt(d_head) with the same weights is exactly the default scaling."""
    default = model_of(t5(attn_scale=None))
    explicit = model_of(t5(attn_scale=(32 // 4) ** -0.5))
    explicit.load_state_dict(default.state_dict())
    inputs, targets = ids(2, 7), ids(2, 5)
    torch.testing.assert_close(
        default(inputs, decoder_input_ids=targets), explicit(inputs, decoder_input_ids=targets)
    )
    unscaled = model_of(t5(attn_scale=1.0))
    unscaled.load_state_dict(default.state_dict())
    assert not torch.allclose(
        default(inputs, decoder_input_ids=targets), unscaled(inputs, decoder_input_ids=targets)
    )


def test_init_folds_the_score_scale_into_the_queries() -> None:
    cfg = t5(d_model=256, n_heads=4, attn_scale=1.0)  # d_head 64: queries start at 0.02 / 8
    model = model_of(cfg)
    attn, cross = model.decoder.blocks[0].attn, model.decoder.blocks[0].cross
    q_rows = attn.split[0]
    assert attn.qkv.weight[:q_rows].std().item() == pytest.approx(0.02 / 8, rel=0.05)
    assert attn.qkv.weight[q_rows:].std().item() == pytest.approx(0.02, rel=0.05)
    assert cross.q.weight.std().item() == pytest.approx(0.02 / 8, rel=0.05)


def test_scaled_tied_head_multiplies_logits_by_d_model_to_the_minus_half() -> None:
    plain = model_of(t5(tie_embeddings=True))
    scaled = model_of(t5(tie_embeddings=True, scale_tied_head=True))
    scaled.load_state_dict(plain.state_dict())
    inputs, targets = ids(2, 7), ids(2, 5)
    torch.testing.assert_close(
        scaled(inputs, decoder_input_ids=targets)[..., :60],
        plain(inputs, decoder_input_ids=targets)[..., :60] * 32**-0.5,
    )


def test_missing_decoder_input_fails_clearly() -> None:
    with pytest.raises(ValueError, match="needs decoder_input_ids"):
        model_of(t5())(ids(1, 5))


def test_model_rebuilds_from_its_saved_config() -> None:
    model = model_of(t5())
    clone = build_model(TransformerConfig(**model.config.to_dict())).eval()
    clone.load_state_dict(model.state_dict())
    inputs, targets = ids(2, 6), ids(2, 4)
    torch.testing.assert_close(
        model(inputs, decoder_input_ids=targets), clone(inputs, decoder_input_ids=targets)
    )
