"""A run that diverges (an absurd learning rate) through the real entry point: `stop` ends it
in one line naming the step; `skip` (the default) skips steps, then stops after too many in a
row."""

from __future__ import annotations

from pathlib import Path

import pytest

DIVERGES = ["optim.lr=1e30", "scheduler.warmup_steps=0", "trainer.max_steps=12"]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (["trainer.nonfinite=stop"], r"(trainer.nonfinite=stop); lower optim.lr"),
        (["trainer.nonfinite_max_consecutive=2"], "3 steps in a row"),
    ],
)
def test_a_diverging_run_stops_in_one_line(
    train_main,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    tiny: list[str],
    policy: list[str],
    message: str,
) -> None:
    code = train_main([*tiny, *DIVERGES, *policy, f"hydra.run.dir={tmp_path / 'run'}"])
    captured = capsys.readouterr()
    assert code == 2, captured.err[-3000:]
    (error,) = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert error.startswith("error: non-finite loss or gradient at step ") and message in error
    assert "Traceback" not in captured.err
    assert not (tmp_path / "run" / "summary.json").exists()
