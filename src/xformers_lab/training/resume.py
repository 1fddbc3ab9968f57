"""`trainer.resume`: which checkpoint a run continues from, read without running code (the RNG
states that make the continuation exact: `rng_states.py`)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

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
