"""The fused head + loss equals `F.linear` then `F.cross_entropy`: value and gradients, chunked,
with ignored targets, under autocast, and through every model shell that trains with it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.core import linear_cross_entropy as lce


def _inputs(n: int = 37, d: int = 16, v: int = 50) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(n, d, generator=gen, requires_grad=True)
    weight = torch.randn(v, d, generator=gen).requires_grad_()
    targets = torch.randint(0, v, (n,), generator=gen)
    targets[::5] = -100
    return hidden, weight, targets


def _reference(hidden, weight, targets):
    return F.cross_entropy(F.linear(hidden, weight), targets, reduction="sum")


@pytest.mark.parametrize("chunk_elements", [50 * 8, 1 << 22])  # 8 rows a chunk (ragged); one
def test_value_and_gradients_equal_linear_then_cross_entropy(monkeypatch, chunk_elements) -> None:
    monkeypatch.setattr(lce, "CHUNK_ELEMENTS", chunk_elements)
    hidden, weight, targets = _inputs()
    (3.0 * _reference(hidden, weight, targets)).backward()
    expected = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    nats = lce.linear_cross_entropy(hidden, weight, targets)
    (3.0 * nats).backward()  # the upstream gradient scales both
    assert nats.item() == pytest.approx(_reference(hidden, weight, targets).item(), rel=1e-6)
    torch.testing.assert_close(hidden.grad, expected[0])
    torch.testing.assert_close(weight.grad, expected[1])
    assert hidden.grad[::5].abs().max() == 0  # ignored rows get no gradient


def test_without_grad_it_only_sums_the_loss() -> None:
    hidden, weight, targets = _inputs()
    with torch.no_grad():
        nats = lce.linear_cross_entropy(hidden, weight, targets)
        assert nats.item() == pytest.approx(_reference(hidden, weight, targets).item(), rel=1e-6)
    assert not nats.requires_grad


def test_under_autocast_it_computes_like_the_autocast_linear() -> None:
    hidden, weight, targets = _inputs(d=64, v=300)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = _reference(hidden, weight, targets)
        nats = lce.linear_cross_entropy(hidden, weight, targets)
    plain = _reference(hidden, weight, targets)
    assert nats.item() == pytest.approx(expected.item(), rel=1e-5)
    assert abs(nats.item() - plain.item()) > 1e-4 * abs(plain.item())  # bf16 really ran
    nats.backward()
    assert hidden.grad.dtype == weight.grad.dtype == torch.float32


@pytest.mark.parametrize(
    "overrides",
    [
        {"arch": "decoder"},  # GPT: tied head, vocabulary padded 70 -> 128
        {"arch": "decoder", "tie_embeddings": False},
        {"arch": "encoder_decoder", "position": "t5", "norm": "rms", "scale_tied_head": True},
    ],
)
def test_model_summed_nats_equal_cross_entropy_of_its_logits(overrides) -> None:
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=70, d_model=32, n_heads=4, n_layers=2, **overrides)
    model = build_model(cfg)
    ids, labels = torch.randint(0, 70, (3, 12)), torch.randint(0, 70, (3, 12))
    labels[0, :4] = -100
    extra = {"decoder_input_ids": torch.randint(0, 70, (3, 12))} if cfg.arch != "decoder" else {}
    logits = model(ids, **extra)
    F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum").backward()
    expected = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    nats = model.summed_nats(ids, labels, **extra)
    nats.backward()
    reference = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum")
    assert nats.item() == pytest.approx(reference.item(), rel=1e-5)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-4, atol=1e-6, msg=name)
