"""Collators: a batch of packed rows -> the tensors one objective trains on.

Every collator of packed rows takes the same input (a list of rows or a (B, L) tensor) and
returns a dict of tensors, so objectives swap collators without touching the data module.
Labelled examples (classification) have their own collator, which pads.
"""

from __future__ import annotations

import copy
import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from xformers_lab.data.windows import WindowBatch

if TYPE_CHECKING:
    from xformers_lab.data.tokenizers import Tokenizer

Rows = Tensor | Sequence[Sequence[int]] | Sequence[Tensor] | Sequence[np.ndarray]


class Collator(ABC):
    """Base of every objective's collator: normalises the batch, then `collate`s it.

    With `with_document_ids(eos_id)` (data.document_mask), batches also carry `document_ids`:
    the document of each model input token, from the EOS tokens of the packed rows, mapped to
    the objective's layout by `document_ids`.
    """

    document_eos_id: int | None = None
    """EOS id that separates documents, when batches carry `document_ids`."""

    def __call__(self, batch: Rows | WindowBatch) -> dict[str, Tensor]:
        keys = None
        if isinstance(batch, WindowBatch):
            batch, keys = batch.rows, batch.starts
        rows = batch if isinstance(batch, Tensor) else torch.as_tensor(np.asarray(batch))
        if rows.dim() != 2:
            raise ValueError(f"expected a batch of rows (B, L), got shape {tuple(rows.shape)}")
        out = self.collate(rows.long(), keys)
        if self.document_eos_id is not None and "document_ids" not in out:
            out["document_ids"] = self.document_ids(row_documents(rows, self.document_eos_id))
        return out

    @abstractmethod
    def collate(self, rows: Tensor, keys: Tensor | None = None) -> dict[str, Tensor]:
        """The objective's tensors from packed rows (B, L) of token ids; `keys` (B,) tell the rows
        apart for random draws (their stream positions), when the loader knows them."""

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

    def collate(self, rows: Tensor, keys: Tensor | None = None) -> dict[str, Tensor]:  # (B, T + 1)
        return {
            "input_ids": rows[:, :-1].contiguous(),  # (B, T)
            "labels": rows[:, 1:].contiguous(),  # (B, T)
        }

    def document_ids(self, documents: Tensor) -> Tensor:  # (B, T + 1) -> (B, T)
        return documents[:, :-1].contiguous()


IGNORE_INDEX = -100
"""Label of a prediction slot that holds no target (`F.cross_entropy`'s default ignore_index)."""


class MaskedLMCollator(Collator):
    """BERT's masking (arXiv 1810.04805 sec. 3.1), dynamic and vectorised.

    Rows of `seq_len - 2` stream tokens are framed as `<cls> row <sep>`. Of the regular tokens
    (specials, `</s>` between documents and padding are never picked), each row selects
    `mask_prob` of them (stochastically rounded, so the rate is exact in expectation); of those,
    `mask_token` become `<mask>`, `random_token` a random regular token and the rest stay as they
    are. The model is told only where the selected tokens are:

        input_ids       (B, seq_len)  the corrupted, framed rows
        mask_positions  (B, K)        positions of the selected tokens; K = ceil(mask_prob * L)
        labels          (B, K)        their original ids; IGNORE_INDEX in unused slots

    Fixed shapes keep the step free of host syncs; the head runs on the K gathered positions.
    The random draws of each row come from a generator seeded by `seed`, the row's contents and,
    from the map-style loader, its stream position (so repeated text is masked differently in
    each place). A row is always masked the same way whatever batch, rank or micro-batch it
    lands in
    (validation is comparable across evaluations, workers need no coordination, and a DDP or
    accumulated run sees the masks of the equivalent single batch), while training windows,
    whose grid shifts every epoch, get fresh masks.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        mask_prob: float = 0.15,
        mask_token: float = 0.8,
        random_token: float = 0.1,
        seed: int = 0,
    ) -> None:
        if not 0.0 < mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob}")
        if not (mask_token >= 0 and random_token >= 0 and mask_token + random_token <= 1 + 1e-9):
            raise ValueError(
                f"mask_token ({mask_token}) and random_token ({random_token}) must be >= 0 and "
                "sum to at most 1"
            )
        if tokenizer.first_regular_id >= tokenizer.vocab_size:
            raise ValueError("the tokenizer has no regular tokens to mask")
        self.mask_prob, self.mask_token, self.random_token = mask_prob, mask_token, random_token
        self.seed = seed
        self.first_regular_id, self.vocab_size = tokenizer.first_regular_id, tokenizer.vocab_size
        self.mask_id, self.cls_id, self.sep_id = (
            tokenizer.mask_id,
            tokenizer.cls_id,
            tokenizer.sep_id,
        )

    def slots(self, row_len: int) -> int:
        """Prediction slots K for rows of `row_len` stream tokens: the most a row can select."""
        return max(1, math.ceil(self.mask_prob * row_len - 1e-9))

    def collate(self, rows: Tensor, keys: Tensor | None = None) -> dict[str, Tensor]:
        # rows: (B, L) = (B, seq_len - 2)
        row_keys = keys.tolist() if keys is not None else [None] * len(rows)
        generators = [self._generator(row, key) for row, key in zip(rows, row_keys, strict=True)]
        row_len = rows.shape[1]
        candidate = rows >= self.first_regular_id  # (B, L): regular tokens only
        n_candidates = candidate.sum(dim=1)
        jitter = torch.stack([torch.rand((), generator=g) for g in generators])
        n_selected = (self.mask_prob * n_candidates + jitter).floor().long()  # (B,)
        # The K lowest random scores, candidates first: a uniform random subset in random order.
        scores = torch.stack([torch.rand(row_len, generator=g) for g in generators])
        scores = scores.masked_fill(~candidate, 2.0)
        order = scores.topk(self.slots(row_len), dim=1, largest=False).indices  # (B, K)
        used = torch.arange(order.shape[1]) < n_selected.unsqueeze(1)  # (B, K)
        original = rows.gather(1, order)
        corrupted = self._corrupt(original, generators)
        inner = rows.scatter(1, order, torch.where(used, corrupted, original))
        return {
            "input_ids": self._frame(inner),  # (B, L + 2)
            "mask_positions": torch.where(used, order + 1, 0),  # +1: after <cls>
            "labels": torch.where(used, original, IGNORE_INDEX),
        }

    def document_ids(self, documents: Tensor) -> Tensor:  # (B, L) -> (B, L + 2)
        """`<cls>` joins the row's first document, `<sep>` its last."""
        return torch.cat([documents[:, :1], documents, documents[:, -1:]], dim=1)

    def _corrupt(self, original: Tensor, generators: list[torch.Generator]) -> Tensor:
        """80/10/10 (by default): `<mask>`, a random regular token, or the token itself."""
        k = original.shape[1]
        draw = torch.stack([torch.rand(k, generator=g) for g in generators])
        random_ids = torch.stack(
            [
                torch.randint(self.first_regular_id, self.vocab_size, (k,), generator=g)
                for g in generators
            ]
        )
        out = torch.where(draw < self.mask_token + self.random_token, random_ids, original)
        return out.masked_fill(draw < self.mask_token, self.mask_id)

    def _frame(self, inner: Tensor) -> Tensor:
        cls = inner.new_full((inner.shape[0], 1), self.cls_id)
        sep = inner.new_full((inner.shape[0], 1), self.sep_id)
        return torch.cat([cls, inner, sep], dim=1)

    def _generator(self, row: Tensor, key: int | None) -> torch.Generator:
        digest = hashlib.blake2b(row.numpy().tobytes(), digest_size=8)
        if key is not None:
            digest.update(key.to_bytes(8, "little", signed=True))
        digest.update(self.seed.to_bytes(8, "little", signed=True))
        return torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1)


class ClassificationCollator:
    """Labelled examples -> `<cls> ids <sep>` rows, right-padded to the batch's longest:

        input_ids       (B, T)  T <= seq_len; examples longer than seq_len - 2 keep their head
        attention_mask  (B, T)  1 for real tokens, 0 for padding
        labels          (B,)    class ids

    Examples are dicts with "input_ids" (a list of token ids, no specials) and "label" (an int).
    """

    def __init__(self, tokenizer: Tokenizer, seq_len: int) -> None:
        if seq_len < 3:
            raise ValueError(f"seq_len must leave room for <cls> and <sep>, got {seq_len}")
        self.max_tokens = seq_len - 2
        self.cls_id, self.sep_id, self.pad_id = tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
        cls, sep = torch.tensor([self.cls_id]), torch.tensor([self.sep_id])
        rows = [
            torch.cat([cls, torch.as_tensor(ex["input_ids"][: self.max_tokens]).long(), sep])
            for ex in examples
        ]
        lengths = torch.tensor([len(row) for row in rows])
        input_ids = pad_sequence(rows, batch_first=True, padding_value=self.pad_id)
        return {
            "input_ids": input_ids,
            "attention_mask": (torch.arange(input_ids.shape[1]) < lengths.unsqueeze(1)).long(),
            "labels": torch.tensor([int(ex["label"]) for ex in examples], dtype=torch.long),
        }
