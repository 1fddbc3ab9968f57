"""AdamW parameter groups: who decays, who does not, and that each parameter is counted once."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.core.layers import RMSNorm
from xformers_lab.training.optim import param_groups


class TinyLM(nn.Module):
    """Every kind of parameter once: embedding, norms, Linear with bias, a tied Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 8)
        self.ln = nn.LayerNorm(8)
        self.rms = RMSNorm(8)
        self.proj = nn.Linear(8, 8)
        self.scale = nn.Parameter(torch.ones(8))
        self.head = nn.Linear(8, 11, bias=False)
        self.head.weight = self.embed.weight


def _ids(group: dict) -> set[int]:
    return {id(p) for p in group["params"]}


def test_only_linear_weights_decay_and_a_tied_head_counts_once() -> None:
    model = TinyLM()
    decay, no_decay = param_groups(model, weight_decay=0.1)
    assert _ids(decay) == {id(model.proj.weight)}
    expected = [model.embed.weight, model.ln.weight, model.ln.bias, model.rms.weight]
    expected += [model.proj.bias, model.scale]
    assert _ids(no_decay) == {id(p) for p in expected}
    assert len(no_decay["params"]) == len(expected)  # the tied head is not listed twice
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)


def test_a_tied_linear_head_never_decays_whatever_the_module_order() -> None:
    head, embed = nn.Linear(8, 11, bias=False), nn.Embedding(11, 8)
    head.weight = embed.weight
    decay, no_decay = param_groups(nn.ModuleDict({"head": head, "embed": embed}), weight_decay=0.1)
    assert decay["params"] == [] and _ids(no_decay) == {id(embed.weight)}


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("norm", ["layer", "rms"])
def test_groups_partition_the_real_model(tie: bool, norm: str) -> None:
    cfg = TransformerConfig(
        vocab_size=70, d_model=32, n_heads=4, n_layers=2, max_seq_len=16, norm=norm,
        tie_embeddings=tie,
    )  # fmt: skip
    model = build_model(cfg)
    decay, no_decay = param_groups(model, weight_decay=0.1)
    linear_weights = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    assert linear_weights and _ids(decay) == linear_weights
    assert not _ids(decay) & _ids(no_decay)
    assert _ids(decay) | _ids(no_decay) == {id(p) for p in model.parameters()}
    assert id(model.embed.weight) in _ids(no_decay)


def test_frozen_parameters_are_left_out() -> None:
    model = TinyLM()
    model.embed.weight.requires_grad_(False)
    model.proj.bias.requires_grad_(False)
    decay, no_decay = param_groups(model, weight_decay=0.1)
    frozen = {id(model.embed.weight), id(model.proj.bias)}
    assert not frozen & (_ids(decay) | _ids(no_decay))


def test_adamw_partial_decays_only_the_first_group() -> None:
    torch.manual_seed(0)
    model = TinyLM()
    make_optimizer = functools.partial(torch.optim.AdamW, lr=0.1, weight_decay=0.5)
    optimizer = make_optimizer(param_groups(model, weight_decay=0.2))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # Adam's update is zero: only decoupled decay moves weights
    optimizer.step()
    after = dict(model.named_parameters())
    torch.testing.assert_close(after["proj.weight"], before["proj.weight"] * (1 - 0.1 * 0.2))
    for name in ["embed.weight", "ln.weight", "ln.bias", "rms.weight", "proj.bias", "scale"]:
        torch.testing.assert_close(after[name], before[name])


@pytest.mark.parametrize(("precision", "fused"), [("32-true", True), ("16-mixed", False)])
def test_adamw_is_fused_unless_fp16_loss_scaling_must_unscale_before_clipping(
    precision: str, fused: bool
) -> None:
    from xformers_lab.cli import compose_config
    from xformers_lab.training.run import optimizer_factory

    make = optimizer_factory(compose_config("train", []).optim, precision)
    optimizer = make(param_groups(TinyLM(), 0.1))
    assert optimizer.defaults["fused"] is fused


def test_gradient_clipping_works_with_a_fused_optimizer() -> None:
    """Lightning's mixed-precision plugin raises for fused optimizers; the task clips itself."""
    from xformers_lab.training.module import TrainingModule

    model = TinyLM()
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), fused=True)
    for param in model.parameters():
        param.grad = torch.full_like(param, 10.0)
    TrainingModule.configure_gradient_clipping(None, optimizer, gradient_clip_val=1.0)  # type: ignore[arg-type]
    grads = [p.grad for p in model.parameters()]
    assert torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) == pytest.approx(1.0)
