"""AdamW parameter groups: weight decay on Linear weight matrices, none on anything else."""

from __future__ import annotations

from typing import Any

from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split the trainable parameters of `model` into a decayed and an undecayed AdamW group.

    Decay shrinks weights towards zero, which regularises projection matrices but only hurts
    biases, norm gains and embedding rows (rare tokens would be pulled to zero between the few
    steps that update them). So only `nn.Linear` weights decay; an `nn.Embedding` parameter never
    does, even when a tied LM head (or a Linear) shares it. Each parameter appears once, and
    frozen parameters are left out.

    Both groups carry `weight_decay` explicitly so an optimizer partial built with any default
    (`partial(param_groups(model, wd))`) applies exactly these values. Group 0 decays, group 1 does
    not; `name` labels them for Lightning's LearningRateMonitor.
    """
    embedding_ids = {
        id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()
    }
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            seen.add(id(param))
            is_matrix = isinstance(module, nn.Linear) and name == "weight"
            (decay if is_matrix and id(param) not in embedding_ids else no_decay).append(param)
    return [
        {"name": "decay", "params": decay, "weight_decay": weight_decay},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0},
    ]
