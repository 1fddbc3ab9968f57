"""What keeps a toy model's step cheap: metrics are logged only on the steps the loggers write
(a `self.log` call costs about a millisecond of Python), and still reach every written row."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import lightning as L
import pytest

from xformers_lab.cli import compose_config
from xformers_lab.training.run import train


def test_train_metrics_are_logged_on_the_written_steps_only(
    tmp_path: Path, tiny: list[str], monkeypatch: pytest.MonkeyPatch, logged_train_losses
) -> None:
    calls: Counter[str] = Counter()
    log = L.LightningModule.log

    def counted(self: L.LightningModule, name: str, *args: object, **kwargs: object) -> None:
        calls[name] += 1
        log(self, name, *args, **kwargs)

    monkeypatch.setattr(L.LightningModule, "log", counted)
    overrides = [*tiny, "trainer.max_steps=20", "trainer.log_every_n_steps=5"]
    summary = train(compose_config("train", overrides), tmp_path)
    assert summary["steps"] == 20
    written = logged_train_losses(tmp_path)
    assert sorted(written) == [4, 9, 14, 19]  # Lightning labels a row with the steps done - 1
    for name in ("train/loss", "train/lr", "train/tokens_seen", "train/tokens_per_sec"):
        assert calls[name] == len(written), name
