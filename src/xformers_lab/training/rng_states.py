"""Every RNG state (python, numpy, torch, CUDA; each rank's) saved in checkpoints and put back
at the first step of a resumed run, so dropout and sampling continue as if it had not stopped."""

from __future__ import annotations

import logging
import random
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


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
