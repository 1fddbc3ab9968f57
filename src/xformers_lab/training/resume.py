"""`trainer.resume`: which checkpoint a run continues from, read without running code, and the
RNG states that make the continuation exact."""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist

from xformers_lab.checkpoints import read_file
from xformers_lab.errors import UserError

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
"""Where a run writes its checkpoints, inside the run directory."""
SHARDS_INDEX = ".metadata"
"""torch.distributed.checkpoint's index of the shards in a sharded checkpoint directory."""
SHARDED_METADATA = "meta.pt"
"""Lightning's file of everything else (step, loops, callbacks) in a sharded checkpoint."""
UNREADABLE_DIR = "unreadable"
"""Where `trainer.resume=auto` moves checkpoints it cannot read, inside the checkpoint dir: kept
as evidence (and for salvage), never overwritten by the resumed run."""


def checkpoint_step(path: str | Path) -> int:
    """The global step of the training checkpoint at `path` (a file, or the directory of a
    sharded one), read with `weights_only=True` and memory-mapped (no tensor is read). A
    missing, truncated or foreign checkpoint is a `UserError` naming it; so is a file that would
    run code when unpickled."""
    path = Path(path)
    if path.is_dir():  # trainer=fsdp: one shard file per rank, the rest in a metadata file
        if not (path / SHARDS_INDEX).is_file():
            raise UserError(
                f"checkpoint {path} is a directory without {SHARDS_INDEX}: not a complete "
                "sharded checkpoint"
            )
        checkpoint, needed = read_file(path / SHARDED_METADATA, cache=False), {"global_step"}
    else:
        checkpoint, needed = read_file(path, cache=False), {"optimizer_states", "global_step"}
    if not isinstance(checkpoint, dict) or not needed <= checkpoint.keys():
        raise UserError(
            f"{path} is not a training checkpoint (no optimizer state); "
            "start from its weights with init_from= instead"
        )
    return int(checkpoint["global_step"])


def newest_good_checkpoint(directory: Path, set_aside: bool = False) -> Path | None:
    """The checkpoint in `directory` with the highest step (newest file on a tie) that loads;
    each one that does not is reported by name, and the fallback is said. With `set_aside`,
    unreadable ones are moved into `UNREADABLE_DIR` (global rank zero only), so the run that
    continues here cannot overwrite them."""
    found: list[tuple[int, float, Path]] = []
    broken: list[Path] = []
    for path in directory.glob("*.ckpt") if directory.is_dir() else ():
        try:
            found.append((checkpoint_step(path), path.stat().st_mtime, path))
        except UserError as err:
            if set_aside and _global_rank() == 0:
                err = UserError(f"{err}; moved it to {_set_aside(path)}")
            log.warning("%s", err)
            broken.append(path)
    if not found:
        return None
    step, _, best = max(found)
    if broken:
        log.warning("falling back to %s (step %d)", best, step)
    return best


def _set_aside(path: Path) -> Path:
    """Move an unreadable checkpoint into `UNREADABLE_DIR` under a name not yet taken."""
    folder = path.parent / UNREADABLE_DIR
    folder.mkdir(exist_ok=True)
    target, n = folder / path.name, 1
    while target.exists():
        target, n = folder / f"{path.stem}.{n}{path.suffix}", n + 1
    path.rename(target)
    return target


def _global_rank() -> int:
    """This process's rank before any process group exists: from the launcher's environment."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    return 0


def resume_checkpoint(resume: str | None, run_dir: Path) -> str | None:
    """The checkpoint `trainer.resume` asks for: None (fresh), `auto` (the newest good one in
    `run_dir`, or None) or a path (which must load)."""
    if resume is None:
        return None
    if resume != "auto":
        checkpoint_step(resume)
        log.info("resuming from %s", resume)
        return resume
    directory = run_dir / CHECKPOINT_DIR
    for partial in [*directory.glob(".*.ckpt.*.tmp"), *directory.glob(".*.ckpt.old")]:
        log.info("removing %s, a checkpoint write the last run did not finish", partial)
        if partial.is_dir():  # a sharded one (trainer=fsdp)
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)  # another rank may have removed it
    found = newest_good_checkpoint(directory, set_aside=True)
    if found is None:
        log.info("trainer.resume=auto: no checkpoint in %s, starting fresh", directory)
        return None
    log.info("trainer.resume=auto: resuming from %s", found)
    return str(found)


def check_resume(resume: str | None) -> None:
    """Config-time check of a `trainer.resume` path (`auto` is decided once the run dir exists)."""
    if resume is not None and resume != "auto":
        checkpoint_step(resume)


class RngStates(L.Callback):
    """Saves every RNG state (python, numpy, torch, CUDA; each rank's) in checkpoints, and puts
    them back just before the first training step of a resumed run (not when the checkpoint is
    loaded: whatever runs between, such as building loaders, must not shift them), so dropout
    draws continue as if the run had not stopped."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"ranks": _gathered(_rng_states())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_batch_start(
        self, trainer: L.Trainer, module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._pending is None:
            return
        ranks = self._pending["ranks"]
        self._pending = None
        if len(ranks) != trainer.world_size:
            log.warning(
                "RNG states not restored: the checkpoint has %d ranks, this run %d",
                len(ranks),
                trainer.world_size,
            )
            return
        _set_rng_states(ranks[trainer.global_rank])


def _rng_states() -> dict[str, Any]:
    """Plain tensors and python values only, so the checkpoint loads with `weights_only=True`."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    numpy = states["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, numpy["pos"], numpy["has_gauss"], numpy["gauss"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _gathered(states: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's states, in rank order (checkpoints are dumped on all ranks, written by one)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [states]
    everyone: list[dict[str, Any]] = [{} for _ in range(dist.get_world_size())]
    dist.all_gather_object(everyone, states)
    return everyone
