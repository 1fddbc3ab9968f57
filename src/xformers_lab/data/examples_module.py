"""ExamplesDataModule: examples encoded once by their objective, served in padded batches."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import lightning as L
import torch
from datasets import Dataset, DatasetDict
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from xformers_lab.data.config import DataConfig

log = logging.getLogger(__name__)

MEGA_BATCHES = 50
"""`group_by_length`: batches per group sorted by length (transformers' mega-batch)."""


class ExamplesDataModule(L.LightningDataModule):
    """Serves examples in padded batches: shuffled (seeded) for training, in order for
    validation. `setup` encodes both splits once with the objective's encoder (cached by
    `datasets`); a collator with a `prepare` method (`ExampleCollator`) then shapes each split
    once (truncation, drops, packing) and says what it changed, which is reported here; the
    collator pads each batch.

    Args:
        splits: "train" and "validation", columns named by role (`data.examples`).
        encode: a `datasets.map` function over batches, with `consumes` (columns it replaces).
    """

    def __init__(
        self,
        cfg: DataConfig,
        splits: DatasetDict,
        encode: Any,
        collator: Callable[[list[dict[str, Any]]], dict[str, Tensor]],
        seed: int,
    ) -> None:
        super().__init__()
        self.cfg, self.splits, self.encode = cfg, splits, encode
        self.collator, self.seed = collator, seed
        self._examples: dict[str, Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        """Encode and prepare both splits; later calls do nothing."""
        if not self._examples:
            self._examples = {
                name: self._encode(split, name) for name, split in self.splits.items()
            }

    def train_dataloader(self) -> DataLoader:
        self.setup()
        generator = torch.Generator().manual_seed(self.seed)
        examples = self._examples["train"]
        if self.cfg.group_by_length:
            sampler = LengthGroupedSampler(lengths(examples), self.cfg.batch_size, generator)
            return self._loader(examples, sampler=sampler)
        return self._loader(examples, shuffle=True, generator=generator)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self._examples["validation"])

    def _encode(self, split: Dataset, name: str) -> Dataset:
        encoded = split.map(
            self.encode,
            batched=True,
            remove_columns=list(self.encode.consumes),
            num_proc=self.cfg.num_proc,
            desc="tokenizing",
        )
        prepare = getattr(self.collator, "prepare", None)
        if prepare is None:
            return encoded
        encoded, notes = prepare(encoded, name)
        for note in notes:
            _report(note)
        return encoded

    def _loader(self, examples: Dataset, **how: Any) -> DataLoader:
        return DataLoader(
            examples,
            batch_size=self.cfg.batch_size,
            collate_fn=self.collator,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
            **how,
        )


@rank_zero_only
def _report(note: str) -> None:
    log.warning(note)


def lengths(examples: Dataset) -> list[int]:
    """Tokens of each example: its `input_ids`, plus its `labels` when it has its own."""
    total = [len(ids) for ids in examples["input_ids"]]
    if "labels" in examples.column_names:
        total = [n + len(ids) for n, ids in zip(total, examples["labels"], strict=True)]
    return total


class LengthGroupedSampler(Sampler[int]):
    """Example indices in a seeded random order, then sorted by length (longest first) within
    each group of `MEGA_BATCHES` batches: a batch holds examples of similar length, and the
    groups come in random order. A new order every epoch (the generator moves on)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> None:
        self.lengths = torch.as_tensor(lengths)
        self.group = MEGA_BATCHES * batch_size
        self.generator = generator

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(len(self.lengths), generator=self.generator)
        for start in range(0, len(order), self.group):
            group = order[start : start + self.group]
            by_length = self.lengths[group].argsort(descending=True, stable=True)
            yield from group[by_length].tolist()
