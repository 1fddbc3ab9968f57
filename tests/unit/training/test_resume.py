"""Choosing the checkpoint to resume from: truncated files are reported by name and skipped,
a file that would run code is refused (and the code does not run), RNG states round-trip."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from xformers_lab.errors import UserError
from xformers_lab.training.resume import (
    UNREADABLE_DIR,
    checkpoint_step,
    newest_good_checkpoint,
    resume_checkpoint,
)
from xformers_lab.training.rng_states import RngStates, _rng_states, _set_rng_states


def fake_checkpoint(path: Path, step: int) -> Path:
    """The keys a Lightning training checkpoint has, with a tensor to make it a real archive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {"w": torch.arange(1000.0)}
    torch.save({"global_step": step, "optimizer_states": [{}], "state_dict": weights}, path)
    return path


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_auto_takes_the_highest_step(tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    fake_checkpoint(directory / "step=20.ckpt", 20)
    fake_checkpoint(directory / "best.ckpt", 10)
    assert resume_checkpoint("auto", tmp_path) == str(directory / "step=20.ckpt")


def test_a_truncated_checkpoint_is_named_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "checkpoints"
    fake_checkpoint(directory / "step=10.ckpt", 10)
    truncate(fake_checkpoint(directory / "last.ckpt", 20))
    with caplog.at_level(logging.WARNING):
        assert newest_good_checkpoint(directory) == directory / "step=10.ckpt"
    assert f"checkpoint {directory / 'last.ckpt'} is corrupt or truncated" in caplog.text
    assert f"falling back to {directory / 'step=10.ckpt'} (step 10)" in caplog.text


def test_auto_starts_fresh_without_a_usable_checkpoint(tmp_path: Path) -> None:
    assert resume_checkpoint("auto", tmp_path) is None
    truncate(fake_checkpoint(tmp_path / "checkpoints" / "last.ckpt", 5))
    assert resume_checkpoint("auto", tmp_path) is None


def test_auto_moves_an_unreadable_checkpoint_aside_instead_of_leaving_it_to_be_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "checkpoints"
    last = fake_checkpoint(directory / "last.ckpt", 20)
    truncate(last)
    evidence = last.read_bytes()
    fake_checkpoint(directory / "step=10.ckpt", 10)
    with caplog.at_level(logging.WARNING):
        assert resume_checkpoint("auto", tmp_path) == str(directory / "step=10.ckpt")
    kept = directory / UNREADABLE_DIR / "last.ckpt"
    assert not last.exists() and kept.read_bytes() == evidence
    assert "is corrupt or truncated (" in caplog.text and f"moved it to {kept}" in caplog.text
    truncate(fake_checkpoint(last, 30))  # it happens again: the first one is still kept
    assert resume_checkpoint("auto", tmp_path) == str(directory / "step=10.ckpt")
    assert kept.read_bytes() == evidence
    assert (directory / UNREADABLE_DIR / "last.1.ckpt").is_file()


def test_an_explicit_path_must_load(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        resume_checkpoint(str(tmp_path / "nope.ckpt"), tmp_path)
    path = fake_checkpoint(tmp_path / "a.ckpt", 3)
    truncate(path)
    with pytest.raises(UserError, match=r"a\.ckpt is corrupt or truncated"):
        resume_checkpoint(str(path), tmp_path)


def test_weights_only_checkpoints_cannot_be_resumed(tmp_path: Path) -> None:
    path = tmp_path / "weights.ckpt"
    torch.save({"state_dict": {}, "global_step": 1}, path)
    with pytest.raises(UserError, match="not a training checkpoint"):
        checkpoint_step(path)


class _Payload:
    """Unpickling this calls `Path.touch(marker)`: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_runs_code_is_refused(tmp_path: Path) -> None:
    from xformers_lab.checkpoints import read

    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoints" / "evil.ckpt"
    path.parent.mkdir()
    torch.save({"global_step": 1, "optimizer_states": [_Payload(marker)]}, path)
    with pytest.raises(UserError, match=r"evil\.ckpt is refused: loading it would run code"):
        checkpoint_step(path)
    with pytest.raises(UserError, match=r"evil\.ckpt"):
        read(path)
    assert resume_checkpoint("auto", tmp_path) is None  # skipped, not loaded
    assert not marker.exists()
    path = path.parent / UNREADABLE_DIR / path.name  # kept aside as evidence
    torch.load(path, weights_only=False)  # the payload does run when loaded unsafely
    assert marker.exists()


def test_rng_states_round_trip_through_a_weights_only_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "rng.pt"
    torch.save(RngStates().state_dict(), path)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    _set_rng_states(torch.load(path, weights_only=True)["ranks"][0])
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2]
    assert _rng_states().keys() >= {"python", "numpy", "torch"}
