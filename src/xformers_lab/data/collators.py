"""Collators: a batch of packed rows -> the tensors one objective trains on.

Every collator takes the same input (a list of rows or a (B, L) tensor) and returns a dict of
tensors, so objectives swap collators without touching the data module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

Rows = Tensor | Sequence[Sequence[int]] | Sequence[Tensor] | Sequence[np.ndarray]


class Collator(ABC):
    """Base of every objective's collator: normalises the batch, then `collate`s it."""

    def __call__(self, batch: Rows) -> dict[str, Tensor]:
        rows = batch if isinstance(batch, Tensor) else torch.as_tensor(np.asarray(batch))
        if rows.dim() != 2:
            raise ValueError(f"expected a batch of rows (B, L), got shape {tuple(rows.shape)}")
        return self.collate(rows.long())

    @abstractmethod
    def collate(self, rows: Tensor) -> dict[str, Tensor]:
        """The objective's tensors from packed rows (B, L) of token ids."""


class CausalLMCollator(Collator):
    """Next-token prediction: rows of seq_len + 1 tokens -> inputs and targets shifted by one."""

    def collate(self, rows: Tensor) -> dict[str, Tensor]:  # rows: (B, T + 1)
        return {
            "input_ids": rows[:, :-1].contiguous(),  # (B, T)
            "labels": rows[:, 1:].contiguous(),  # (B, T)
        }
