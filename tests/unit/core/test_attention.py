"""Attention properties: causality, padding, GQA equivalence, mask construction."""

from __future__ import annotations

import pytest
import torch

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.core.attention import attention_mask
from xformers_lab.core.positions import POSITIONS


def tiny(**overrides) -> TransformerConfig:
    return TransformerConfig(
        **{
            "vocab_size": 50,
            "d_model": 32,
            "n_heads": 4,
            "n_layers": 2,
            "max_seq_len": 32,
            **overrides,
        }
    )


@pytest.mark.parametrize("position", list(POSITIONS))
def test_decoder_leaks_nothing_from_the_future(position: str) -> None:
    torch.manual_seed(0)
    model = build_model(tiny(position=position)).eval()
    ids = torch.randint(7, 50, (2, 12))
    changed = ids.clone()
    changed[:, 8:] = torch.randint(7, 50, (2, 4))
    before, after = model(ids), model(changed)
    torch.testing.assert_close(before[:, :8], after[:, :8])
    assert not torch.allclose(before[:, 8:], after[:, 8:])


@pytest.mark.parametrize("position", list(POSITIONS))
def test_right_padding_leaves_real_positions_unchanged(position: str) -> None:
    torch.manual_seed(0)
    model = build_model(tiny(position=position)).eval()
    ids = torch.randint(7, 50, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 4])
    alone = model(ids)
    with_pad = model(padded, attention_mask=mask)
    torch.testing.assert_close(alone, with_pad[:, :6], atol=1e-5, rtol=1e-5)


def test_left_padding_gives_finite_outputs() -> None:
    model = build_model(tiny(position="alibi")).eval()
    ids = torch.randint(7, 50, (2, 8))
    mask = torch.ones(2, 8)
    mask[0, :5] = 0
    assert torch.isfinite(model(ids, attention_mask=mask)[..., :50]).all()


def test_gqa_with_all_kv_heads_is_mha() -> None:
    torch.manual_seed(0)
    mha = build_model(tiny())
    torch.manual_seed(0)
    gqa = build_model(tiny(n_kv_heads=4))
    ids = torch.randint(0, 50, (2, 10))
    torch.testing.assert_close(mha(ids), gqa(ids))


@pytest.mark.parametrize("n_kv_heads", [1, 2])
def test_gqa_equals_mha_with_repeated_kv_heads(n_kv_heads: int) -> None:
    """GQA/MQA == MHA whose key/value heads are copies of the shared ones."""
    torch.manual_seed(0)
    gqa = build_model(tiny(n_kv_heads=n_kv_heads, position="rope")).eval()
    mha = build_model(tiny(position="rope")).eval()
    state = gqa.state_dict()
    group, d = 4 // n_kv_heads, 8
    for name, value in list(state.items()):
        if name.endswith("attn.qkv.weight") or name.endswith("attn.qkv.bias"):
            q, k, v = value.split([32, n_kv_heads * d, n_kv_heads * d])
            state[name] = torch.cat(
                [q, _repeat_heads(k, n_kv_heads, group), _repeat_heads(v, n_kv_heads, group)]
            )
    mha.load_state_dict(state)
    ids = torch.randint(0, 50, (2, 10))
    torch.testing.assert_close(gqa(ids), mha(ids), atol=1e-5, rtol=1e-5)


def _repeat_heads(t: torch.Tensor, n_kv_heads: int, group: int) -> torch.Tensor:
    return t.unflatten(0, (n_kv_heads, -1)).repeat_interleave(group, 0).flatten(0, 1)


def test_mask_is_none_for_plain_causal_attention() -> None:
    mask, is_causal = attention_mask(
        causal=True, q_len=4, k_len=4, key_padding=None, bias=None, device=torch.device("cpu")
    )
    assert mask is None and is_causal


def test_mask_combines_causality_padding_and_bias() -> None:
    padding = torch.tensor([[1, 1, 1, 0]])
    bias = torch.zeros(1, 1, 4, 4)
    mask, is_causal = attention_mask(
        causal=True, q_len=4, k_len=4, key_padding=padding, bias=bias, device=torch.device("cpu")
    )
    assert not is_causal
    allowed = torch.isfinite(mask[0, 0])
    expected = torch.tensor(
        [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool
    )  # the padded query keeps its own key so its softmax is defined
    assert torch.equal(allowed, expected)
