"""Consolidation of sharded checkpoints: the optimizer layout conversion, and one-line errors
for what is not a sharded checkpoint (the real round trip is in tests/distributed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xformers_lab.errors import UserError
from xformers_lab.training.consolidate import consolidate, indexed_optimizer_state
from xformers_lab.training.resume import checkpoint_step


def test_named_optimizer_states_become_torch_optim_indices() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LayerNorm(3))
    optimizer = torch.optim.AdamW(
        [{"params": [model[0].weight]}, {"params": [model[0].bias, *model[1].parameters()]}]
    )
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    expected = optimizer.state_dict()
    names = {id(p): n for n, p in model.named_parameters()}
    by_name = {
        "state": {names[id(p)]: s for p, s in optimizer.state.items()},
        "param_groups": [
            {
                **{k: v for k, v in g.items() if k != "params"},
                "params": [names[id(p)] for p in g["params"]],
            }
            for g in optimizer.param_groups
        ],
    }
    converted = indexed_optimizer_state(by_name)
    assert converted["param_groups"] == expected["param_groups"]
    assert converted["state"].keys() == expected["state"].keys()
    for index, state in expected["state"].items():
        torch.testing.assert_close(converted["state"][index]["exp_avg"], state["exp_avg"])
    optimizer.load_state_dict(converted)  # torch.optim accepts it as its own


def test_a_file_or_an_incomplete_directory_is_refused_in_one_line(tmp_path: Path) -> None:
    plain = tmp_path / "plain.ckpt"
    plain.write_bytes(b"x")
    with pytest.raises(UserError, match="is not a sharded checkpoint directory"):
        consolidate(plain, tmp_path / "out.ckpt")
    partial = tmp_path / "last.ckpt"
    partial.mkdir()
    (partial / "__0_0.distcp").write_bytes(b"")
    with pytest.raises(UserError, match=r"without \.metadata: not a complete sharded checkpoint"):
        consolidate(partial, tmp_path / "out.ckpt")
    with pytest.raises(UserError, match="not a complete sharded checkpoint"):
        checkpoint_step(partial)
    assert not (tmp_path / "out.ckpt").exists()
