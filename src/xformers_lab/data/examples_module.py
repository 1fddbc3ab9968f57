"""ExamplesDataModule: examples encoded once by their objective, served in padded batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from datasets import Dataset, DatasetDict
from torch import Tensor
from torch.utils.data import DataLoader

from xformers_lab.data.config import DataConfig


class ExamplesDataModule(L.LightningDataModule):
    """Serves examples in padded batches: shuffled (seeded) for training, in order for
    validation. `setup` encodes both splits once with the objective's encoder (cached by
    `datasets`); the objective's collator truncates and pads.

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
        """Encode both splits; later calls do nothing."""
        if not self._examples:
            self._examples = {name: self._encode(split) for name, split in self.splits.items()}

    def train_dataloader(self) -> DataLoader:
        self.setup()
        generator = torch.Generator().manual_seed(self.seed)
        return self._loader(self._examples["train"], shuffle=True, generator=generator)

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self._examples["validation"], shuffle=False, generator=None)

    def _encode(self, split: Dataset) -> Dataset:
        return split.map(
            self.encode,
            batched=True,
            remove_columns=list(self.encode.consumes),
            num_proc=self.cfg.num_proc,
            desc="tokenizing",
        )

    def _loader(self, examples: Dataset, shuffle: bool, generator: Any) -> DataLoader:
        return DataLoader(
            examples,
            batch_size=self.cfg.batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=self.collator,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
        )
