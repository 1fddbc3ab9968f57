"""Training precisions on a CPU: bf16-mixed (autocast, fp32 weights) and bf16-true (bf16
weights) train the tiny model about as well as fp32, and keep the weights in their dtype."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


def run(train_main, run_dir: Path, tiny: list[str], precision: str) -> tuple[float, torch.dtype]:
    assert train_main([*tiny, f"trainer.precision={precision}", f"hydra.run.dir={run_dir}"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    return summary["best_val_loss"], state["model.embed.weight"].dtype


@pytest.mark.slow
@pytest.mark.parametrize(
    ("precision", "weights"), [("bf16-mixed", torch.float32), ("bf16-true", torch.bfloat16)]
)
def test_bf16_precisions_train_like_fp32(
    precision: str, weights: torch.dtype, tiny: list[str], train_main, tmp_path: Path
) -> None:
    fp32_loss, fp32_weights = run(train_main, tmp_path / "fp32", tiny, "32-true")
    loss, dtype = run(train_main, tmp_path / precision, tiny, precision)
    assert fp32_weights == torch.float32 and dtype == weights
    assert loss == pytest.approx(fp32_loss, rel=0.03)
    assert loss != fp32_loss  # really another precision
