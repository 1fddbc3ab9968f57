"""Summed cross-entropy of an LM head without materialising the (tokens x vocabulary) logits.

The plain path (`F.linear` then `F.cross_entropy`) writes the logits, their log-softmax, the
gradient of the log-softmax and the gradient of the logits: four tensors of tokens x vocabulary
(67 MB each at 2048 tokens x 8192 words), each a fresh allocation the CPU allocator returns to
the kernel and faults back in every step. Here the rows go through in chunks of about
`chunk_elements` logits: a chunk's logits are turned into their gradient (softmax minus the
one-hot target) in place, and both matmuls of the backward pass run at once, so one reused
chunk buffer replaces the four tensors and the log-softmax runs on data still in cache. The same
three matmuls are done (the backward's two just run early); what goes is the memory traffic.
This is the "fused linear cross-entropy" of Liger-Kernel (arXiv 2410.10989) and Apple's Cut
Cross-Entropy (arXiv 2411.09009), in plain torch ops.
"""

from __future__ import annotations

import torch
from torch import Tensor

CHUNK_ELEMENTS = 1 << 22
"""Logits per chunk on a CPU (16 MiB in fp32): big enough for efficient matmuls, small enough
to stay in its last-level cache."""
ACCELERATOR_CHUNK_ELEMENTS = 1 << 26
"""Logits per chunk on a GPU (256 MiB in fp32): thousands of rows even at a 50k vocabulary, so
the matmuls keep their tensor-core efficiency while memory stays far below whole logits."""


def chunk_elements(device: torch.device) -> int:
    """Logits computed at once on `device`."""
    return CHUNK_ELEMENTS if device.type == "cpu" else ACCELERATOR_CHUNK_ELEMENTS


def linear_cross_entropy(
    hidden: Tensor, weight: Tensor, targets: Tensor, ignore_index: int = -100
) -> Tensor:
    """Sum over the targets of cross-entropy(hidden @ weight.T, target), in nats.

    hidden: (N, D); weight: (V, D), every row a real class (slice off vocabulary padding
    first); targets: (N,), `ignore_index` where a row has no target. Equals
    `F.cross_entropy(F.linear(hidden, weight), targets, reduction="sum")` with its gradients;
    under autocast the matmuls run in the autocast dtype and the softmax in fp32, as there.
    """
    compute_dtype = _compute_dtype(hidden)
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(hidden, weight, targets, ignore_index, compute_dtype)
    return _chunked(hidden, weight, targets, ignore_index, compute_dtype, grads=None)


def _compute_dtype(hidden: Tensor) -> torch.dtype:
    """The dtype `F.linear` would compute in: autocast's, if it is on for this device."""
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return hidden.dtype


class _LinearCrossEntropy(torch.autograd.Function):
    """Forward computes the loss and both input gradients; backward only scales them."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        hidden: Tensor,
        weight: Tensor,
        targets: Tensor,
        ignore_index: int,
        compute_dtype: torch.dtype,
    ) -> Tensor:
        grads = (
            torch.empty_like(hidden),
            torch.zeros(weight.shape, dtype=torch.float32, device=weight.device),
        )
        nats = _chunked(hidden, weight, targets, ignore_index, compute_dtype, grads)
        ctx.save_for_backward(grads[0], grads[1].to(weight.dtype))
        return nats

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_nats: Tensor
    ) -> tuple[Tensor | None, ...]:
        grad_hidden, grad_weight = ctx.saved_tensors  # type: ignore[attr-defined]
        return grad_hidden * grad_nats, grad_weight * grad_nats, None, None, None


def _chunked(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    ignore_index: int,
    compute_dtype: torch.dtype,
    grads: tuple[Tensor, Tensor] | None,
) -> Tensor:
    """Summed nats, chunk by chunk; with `grads` (grad_hidden, fp32 grad_weight) also fills
    them with the gradients of that sum."""
    x, w = hidden.detach().to(compute_dtype), weight.detach().to(compute_dtype)
    valid = targets != ignore_index
    safe_targets = targets.masked_fill(~valid, 0)
    weights = valid.to(torch.float32)  # 0 for ignored rows: no loss, no gradient
    rows = max(1, chunk_elements(x.device) // w.shape[0])
    buffer = x.new_empty(min(rows, x.shape[0]), w.shape[0], dtype=torch.float32)
    nats = x.new_zeros((), dtype=torch.float32)
    for start in range(0, x.shape[0], rows):
        chunk = slice(start, start + rows)
        xs, ts, ws = x[chunk], safe_targets[chunk], weights[chunk]
        logits = buffer[: xs.shape[0]]
        if compute_dtype == torch.float32:
            torch.mm(xs, w.t(), out=logits)
        else:
            logits.copy_(torch.mm(xs, w.t()))
        target_logits = logits.gather(1, ts[:, None]).squeeze(1)
        shift = logits.amax(dim=1, keepdim=True)
        total = logits.sub_(shift).exp_().sum(dim=1, keepdim=True)  # logits now exp(z - max)
        nats = nats + ((shift + total.log()).squeeze(1) - target_logits).mul(ws).sum()
        if grads is None:
            continue
        probs = logits.mul_(ws[:, None] / total)  # softmax, zeroed on ignored rows
        probs[torch.arange(xs.shape[0], device=xs.device), ts] -= ws  # d nats / d logits
        if compute_dtype == torch.float32 == hidden.dtype:
            torch.mm(probs, w, out=grads[0][chunk])
            torch.addmm(grads[1], probs.t(), xs, out=grads[1])  # in place, seen by FLOP counters
        else:
            d_logits = probs.to(compute_dtype)
            grads[0][chunk] = torch.mm(d_logits, w)
            grads[1].add_(torch.mm(d_logits.t(), xs))
    return nats
