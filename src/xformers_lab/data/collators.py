"""Collators: a batch of packed rows -> the tensors one objective trains on.

Every collator takes the same input (a list of rows or a (B, L) tensor) and returns a dict of
tensors, so objectives swap collators without touching the data module.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

Rows = Tensor | Sequence[Sequence[int]] | Sequence[Tensor] | Sequence[np.ndarray]


class Collator(ABC):
    """Base of every objective's collator: normalises the batch, then `collate`s it.

    With `with_document_ids(eos_id)` (data.document_mask), batches also carry `document_ids`:
    the document of each model input token, from the EOS tokens of the packed rows, mapped to
    the objective's layout by `document_ids`.
    """

    document_eos_id: int | None = None
    """EOS id that separates documents, when batches carry `document_ids`."""

    def __call__(self, batch: Rows) -> dict[str, Tensor]:
        rows = batch if isinstance(batch, Tensor) else torch.as_tensor(np.asarray(batch))
        if rows.dim() != 2:
            raise ValueError(f"expected a batch of rows (B, L), got shape {tuple(rows.shape)}")
        out = self.collate(rows.long())
        if self.document_eos_id is not None and "document_ids" not in out:
            out["document_ids"] = self.document_ids(row_documents(rows, self.document_eos_id))
        return out

    @abstractmethod
    def collate(self, rows: Tensor) -> dict[str, Tensor]:
        """The objective's tensors from packed rows (B, L) of token ids."""

    def document_ids(self, documents: Tensor) -> Tensor:
        """The documents (B, L) of the packed rows' tokens, laid out like `input_ids`.

        An objective supports data.document_mask by overriding this. One whose layout depends
        on its own draws (span corruption) may instead set `document_ids` (and, say,
        `decoder_document_ids`) in `collate` from `row_documents(rows, self.document_eos_id)`,
        overriding this only to declare the support.
        """
        raise NotImplementedError(f"{type(self).__name__} does not support document masking")

    @property
    def supports_document_ids(self) -> bool:
        """Whether this objective lays out `document_ids` (overrides `document_ids`)."""
        return type(self).document_ids is not Collator.document_ids

    def with_document_ids(self, eos_id: int) -> Collator:
        """A copy whose batches also carry `document_ids`, documents being EOS-terminated."""
        if not self.supports_document_ids:
            raise ValueError(f"{type(self).__name__} does not support document masking")
        clone = copy.copy(self)
        clone.document_eos_id = eos_id
        return clone


def row_documents(rows: Tensor, eos_id: int) -> Tensor:
    """(B, L) document index of each token of packed rows, counted from 0 in each row: a new
    document starts after every EOS, and an EOS belongs to the document it ends."""
    is_eos = (rows == eos_id).long()
    return is_eos.cumsum(dim=1) - is_eos


class CausalLMCollator(Collator):
    """Next-token prediction: rows of seq_len + 1 tokens -> inputs and targets shifted by one."""

    def collate(self, rows: Tensor) -> dict[str, Tensor]:  # rows: (B, T + 1)
        return {
            "input_ids": rows[:, :-1].contiguous(),  # (B, T)
            "labels": rows[:, 1:].contiguous(),  # (B, T)
        }

    def document_ids(self, documents: Tensor) -> Tensor:  # (B, T + 1) -> (B, T)
        return documents[:, :-1].contiguous()
