"""Gradient accumulation divides by the step's target count: k micro-batches of b rows train
exactly like one batch of k x b rows (same per-step losses, same weights), for an objective whose
target count varies between micro-batches (MLM) as well as constant ones (causal LM, spans)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

FAMILIES = {
    "clm": ["model=gpt", "task=clm"],
    "mlm": ["model=bert", "task=mlm"],
    "span": ["model=t5", "task=span"],
}
STEPS = 8


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_k_micro_batches_equal_one_batch_k_times_larger(
    family: str, tiny: list[str], train_main, logged_train_losses, tmp_path: Path
) -> None:
    common = [
        *FAMILIES[family],
        *tiny,
        f"trainer.max_steps={STEPS}",
        "trainer.log_every_n_steps=1",
        "trainer.val_check_interval=4",
        "trainer.limit_val_batches=2",
    ]
    one, accumulated = tmp_path / "one", tmp_path / "accumulated"
    assert train_main([*common, "data.batch_size=8", f"hydra.run.dir={one}"]) == 0
    assert (
        train_main(
            [
                *common,
                "data.batch_size=2",
                "trainer.accumulate_grad_batches=4",
                f"hydra.run.dir={accumulated}",
            ]
        )
        == 0
    )
    expected, got = logged_train_losses(one), logged_train_losses(accumulated)
    assert sorted(got) == sorted(expected) == list(range(STEPS))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step
    reference = final_weights(one)
    for name, tensor in final_weights(accumulated).items():
        torch.testing.assert_close(tensor, reference[name], rtol=1e-4, atol=1e-5, msg=name)
