"""`trainer.compile=true` (with activation checkpointing, as on a large GPU run) trains the same
model: the same per-step losses as eager mode, and a checkpoint whose weights load uncompiled."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch._dynamo.utils import counters

from xformers_lab.inference.loading import load

STEPS = ["trainer.max_steps=6", "trainer.val_check_interval=6", "trainer.log_every_n_steps=1"]


@pytest.mark.slow
def test_compiled_blocks_train_like_eager_ones(
    tiny: list[str], train_main, logged_train_losses, tmp_path: Path
) -> None:
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    assert train_main([*tiny, *STEPS, f"hydra.run.dir={eager}"]) == 0
    assert not counters["stats"]["unique_graphs"]  # eager mode compiled nothing
    args = [*tiny, *STEPS, "trainer.compile=true", "model.activation_checkpointing=true"]
    assert train_main([*args, f"hydra.run.dir={compiled}"]) == 0
    assert counters["stats"]["unique_graphs"] >= 1  # dynamo captured the blocks
    expected, got = logged_train_losses(eager), logged_train_losses(compiled)
    assert sorted(got) == sorted(expected) == list(range(6))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-4), step
    loaded = load(compiled / "checkpoints" / "last.ckpt")  # parameter names as in eager mode
    assert loaded.config.activation_checkpointing
