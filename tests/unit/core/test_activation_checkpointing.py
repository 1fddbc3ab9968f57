"""`model.activation_checkpointing=true` recomputes blocks in the backward pass: the same loss and
gradients, fewer tensors kept for backward, and no effect outside training."""

from __future__ import annotations

import pytest
import torch

from xformers_lab.core import TransformerConfig, build_model

ARCHS = ("decoder", "encoder", "encoder_decoder")


def forward_backward(
    arch: str, checkpointing: bool, training: bool = True
) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """Loss, gradients and how many tensors autograd saved for the backward pass."""
    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=50, arch=arch, d_model=32, n_layers=3, n_heads=4, dropout=0.1,
        activation_checkpointing=checkpointing,
    )  # fmt: skip
    model = build_model(cfg).train(training)
    ids = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    extra = {"decoder_input_ids": ids[:, :6]} if arch == "encoder_decoder" else {}
    saved = 0

    def count(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += 1
        return tensor

    torch.manual_seed(2)  # the same dropout draws in both runs (recomputation replays them)
    with torch.autograd.graph.saved_tensors_hooks(count, lambda t: t):
        loss = model(ids, **extra).float().square().mean()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()], saved


@pytest.mark.parametrize("arch", ARCHS)
def test_checkpointed_blocks_give_the_same_gradients_and_save_fewer_tensors(arch: str) -> None:
    loss, grads, saved = forward_backward(arch, checkpointing=False)
    loss_ckpt, grads_ckpt, saved_ckpt = forward_backward(arch, checkpointing=True)
    torch.testing.assert_close(loss_ckpt, loss)
    for got, expected in zip(grads_ckpt, grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert saved_ckpt < saved / 2


def test_evaluation_does_not_checkpoint() -> None:
    *_, saved = forward_backward("decoder", checkpointing=False, training=False)
    *_, saved_ckpt = forward_backward("decoder", checkpointing=True, training=False)
    assert saved_ckpt == saved
