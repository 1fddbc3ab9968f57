"""TextDataModule: tokenized, packed train/validation rows served as Lightning dataloaders."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import torch
from datasets import DatasetDict
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from xformers_lab.data.config import DataConfig
from xformers_lab.data.packing import pack, stream_len, tokenize
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.errors import UserError

SPLITS = ("train", "validation")


class TextDataModule(L.LightningDataModule):
    """Serves a corpus as batches of packed rows for any objective.

    `setup` tokenizes and packs both splits once and keeps the rows as one int32 tensor per split,
    so a step costs one tensor index and the collator, never a Python loop over tokens.
    """

    def __init__(
        self,
        cfg: DataConfig,
        tokenizer: Tokenizer,
        splits: DatasetDict,
        block_len: int,
        stride: int,
        collator: Callable[[Tensor], dict[str, Tensor]],
        seed: int,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.splits = splits
        self.block_len = block_len
        self.stride = stride
        self.collator = collator
        self.seed = seed
        self._rows: dict[str, Tensor] = {}

    def setup(self, stage: str | None = None) -> None:
        """Tokenize and pack both splits; later calls do nothing."""
        if self._rows:
            return
        rows = {name: self._pack(name) for name in SPLITS}
        if len(rows["train"]) < self.cfg.batch_size:
            raise UserError(
                f"the train split packs to {len(rows['train'])} rows of {self.block_len} tokens, "
                f"fewer than data.batch_size={self.cfg.batch_size}; lower data.batch_size or "
                "data.seq_len, or add data"
            )
        self._rows = rows

    @property
    def n_train_rows(self) -> int:
        """Packed training rows (setting up on first use)."""
        self.setup()
        return len(self._rows["train"])

    @property
    def n_val_rows(self) -> int:
        """Packed validation rows (setting up on first use)."""
        self.setup()
        return len(self._rows["validation"])

    def train_dataloader(self) -> DataLoader:
        """Shuffled from `seed` (the same seed gives the same order), full batches only."""
        self.setup()
        return self._loader(
            self._rows["train"],
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def val_dataloader(self) -> DataLoader:
        """Every validation row, in order."""
        self.setup()
        return self._loader(self._rows["validation"], shuffle=False, drop_last=False)

    def _pack(self, name: str) -> Tensor:
        tokenized = tokenize(self.splits[name], self.tokenizer, self.cfg.num_proc)
        packed = pack(tokenized, self.block_len, self.stride, self.tokenizer.eos_id)
        if len(packed) == 0:
            raise UserError(
                f"the {name} split has {stream_len(tokenized)} tokens, fewer than one packed row "
                f"of {self.block_len} (data.seq_len={self.cfg.seq_len}); lower data.seq_len or "
                "add data"
            )
        return torch.from_numpy(packed.with_format("numpy")[:]["input_ids"])  # (N, block_len)

    def _loader(
        self,
        rows: Tensor,
        shuffle: bool,
        drop_last: bool,
        generator: torch.Generator | None = None,
    ) -> DataLoader:
        return DataLoader(
            _Rows(rows),
            batch_size=self.cfg.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            generator=generator,
            collate_fn=self.collator,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
        )


class _Rows(Dataset[Tensor]):
    """Packed rows; `__getitems__` lets the DataLoader fetch a whole batch with one index."""

    def __init__(self, rows: Tensor) -> None:
        self.rows = rows  # (N, block_len) int32

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Tensor:
        return self.rows[index]

    def __getitems__(self, indices: Sequence[int]) -> Tensor:
        return self.rows[torch.as_tensor(indices)]  # (B, block_len)
