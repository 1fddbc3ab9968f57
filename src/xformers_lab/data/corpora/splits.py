"""Hold out validation text from a training split, deterministically."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict

from xformers_lab.data.corpora.columns import first_row, has_text
from xformers_lab.errors import UserError

SPLIT_SEED = 0


def split_off_validation(
    train: Dataset | IterableDataset, val_fraction: float
) -> DatasetDict | IterableDatasetDict:
    """Train/validation from one "text" split.

    With enough documents (at least one to hold out), a seeded random `val_fraction` of whole
    documents goes to validation. With too few (one file, as in nanoGPT's tinyshakespeare), each
    document is cut instead: its first `1 - val_fraction` trains, the rest validates.

    A streamed split, whose length is unknown, holds out the documents whose text hashes below
    `val_fraction`: the same documents however the stream is sharded.
    """
    if isinstance(train, IterableDataset):
        return _split_by_hash(train, val_fraction)
    n_val = int(len(train) * val_fraction)
    if n_val == 0:
        return _split_tails(train, val_fraction)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(train))
    return DatasetDict(
        train=train.select(np.sort(order[n_val:])),
        validation=train.select(np.sort(order[:n_val])),
    )


def _split_tails(train: Dataset, val_fraction: float) -> DatasetDict:
    heads: list[str] = []
    tails: list[str] = []
    for text in train["text"]:
        cut = tail_cut(text, 1.0 - val_fraction)
        heads.append(text[:cut])
        tails.append(text[cut:])
    splits = DatasetDict(
        train=Dataset.from_dict({"text": heads}), validation=Dataset.from_dict({"text": tails})
    )
    splits = splits.filter(has_text, batched=True)
    for name, split in splits.items():
        if len(split) == 0:
            raise UserError(
                f"the corpus is too short to hold out data.val_fraction={val_fraction} as {name}; "
                "add text or give validation files (data.val_path)"
            )
    return splits


def tail_cut(text: str, keep: float) -> int:
    """Where to cut `text` so that about `keep` of it comes first.

    nanoGPT cuts at exactly `int(len(text) * keep)`; we move that to the nearest line start, or
    keep it when the text has no line start strictly inside it.
    """
    cut = int(len(text) * keep)
    line_starts = (text.rfind("\n", 0, cut) + 1, text.find("\n", cut) + 1)
    inside = [p for p in line_starts if 0 < p < len(text)]
    return min(inside, key=lambda p: abs(p - cut), default=cut)


def _split_by_hash(train: IterableDataset, val_fraction: float) -> IterableDatasetDict:
    splits = IterableDatasetDict(
        train=train.filter(_HashHoldout(val_fraction, held_out=False), batched=True),
        validation=train.filter(_HashHoldout(val_fraction, held_out=True), batched=True),
    )
    for name, split in splits.items():
        if first_row(split) is None:
            raise UserError(
                f"data.streaming=true holds out whole documents (by a hash of their text) and "
                f"none went to {name}; give validation data (data.val_path or data.val_split), "
                "or cut the text into more documents (data.sample_by=paragraph)"
            )
    return splits


class _HashHoldout:
    """`filter` function: documents whose text hash is below (or not) `val_fraction`."""

    def __init__(self, val_fraction: float, held_out: bool) -> None:
        self.val_fraction, self.held_out = val_fraction, held_out

    def __call__(self, batch: dict[str, list[Any]]) -> list[bool]:
        return [
            (zlib.crc32(text.encode("utf-8", "surrogatepass")) / 2**32 < self.val_fraction)
            == self.held_out
            for text in batch["text"]
        ]
