"""AtomicCheckpointIO: round trips, and a failed save never damages the previous checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

from xformers_lab.training.checkpoint_io import AtomicCheckpointIO


class Unpicklable:
    """Fails the save from inside `torch.save`, the way an odd object in a checkpoint would."""

    def __init__(self, error: type[BaseException]) -> None:
        self.error = error

    def __reduce__(self) -> tuple:
        raise self.error("cannot pickle this")


def test_round_trip_into_a_new_directory_with_normal_permissions(tmp_path: Path) -> None:
    checkpoint = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "global_step": 7}
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint(checkpoint, path)
    loaded = io.load_checkpoint(path, weights_only=True)
    assert loaded["global_step"] == 7
    torch.testing.assert_close(loaded["state_dict"]["w"], checkpoint["state_dict"]["w"])
    assert os.listdir(path.parent) == ["last.ckpt"]
    reference = path.parent.parent / "reference"
    reference.touch()
    assert path.stat().st_mode == reference.stat().st_mode  # the umask's, not mkstemp's 0600


def _fail_in_pickling(error: type[BaseException]) -> dict:
    return {"state_dict": {"w": torch.ones(1000)}, "bad": Unpicklable(error)}


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_save_failing_in_pickling_keeps_the_old_file(
    tmp_path: Path, error: type[BaseException]
) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1}, path)
    before = path.read_bytes()
    with pytest.raises(error, match="cannot pickle"):
        io.save_checkpoint(_fail_in_pickling(error), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_a_save_failing_after_the_bytes_are_written_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1}, path)
    before = path.read_bytes()

    def disk_error(fd: int) -> None:
        assert os.fstat(fd).st_size > len(before)  # the new checkpoint is fully written by now
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", disk_error)
    with pytest.raises(OSError, match="I/O error"):
        io.save_checkpoint({"state_dict": {"w": torch.ones(1000)}}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_remote_paths_keep_lightnings_own_write() -> None:
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 3}, "memory://xformers_lab_test/last.ckpt")
    assert io.load_checkpoint("memory://xformers_lab_test/last.ckpt")["global_step"] == 3
    io.remove_checkpoint("memory://xformers_lab_test/last.ckpt")


def test_trainer_checkpoints_go_through_it(tmp_path: Path) -> None:
    trainer = pl.Trainer(
        default_root_dir=tmp_path, max_steps=2, limit_val_batches=0, logger=False,
        enable_progress_bar=False, enable_model_summary=False, plugins=[AtomicCheckpointIO()],
    )  # fmt: skip
    trainer.fit(BoringModel())
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    (ckpt,) = (tmp_path / "checkpoints").iterdir()
    assert torch.load(ckpt, weights_only=False)["global_step"] == 2
