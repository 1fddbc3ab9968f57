"""TextDataModule: tokenized, packed train/validation rows served as Lightning dataloaders."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from datasets import DatasetDict
from torch import Tensor
from torch.utils.data import DataLoader

from xformers_lab.data.config import DataConfig
from xformers_lab.data.packing import join_documents, tokenize
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.data.windows import EpochWindowSampler, StreamWindows
from xformers_lab.errors import UserError

SPLITS = ("train", "validation")


class TextDataModule(L.LightningDataModule):
    """Serves a corpus as batches of fixed-length windows for any objective.

    `setup` tokenizes each split once into one int32 token stream; a step costs one gather and
    the collator, never a Python loop over tokens. Training windows are shuffled, and their grid
    shifts each epoch when `data.shift_windows` is on; validation is a fixed grid in order.
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
        self._streams: dict[str, Tensor] = {}

    def setup(self, stage: str | None = None) -> None:
        """Tokenize both splits into streams; later calls do nothing."""
        if self._streams:
            return
        streams = {name: self._stream(name) for name in SPLITS}
        n_train = len(self._sampler(streams["train"], train=True))
        if n_train < self.cfg.batch_size:
            raise UserError(
                f"the train split packs to {n_train} rows of {self.block_len} tokens, "
                f"fewer than data.batch_size={self.cfg.batch_size}; lower data.batch_size or "
                "data.seq_len, or add data"
            )
        self._streams = streams

    @property
    def n_train_rows(self) -> int:
        """Training windows per epoch (setting up on first use)."""
        self.setup()
        return len(self._sampler(self._streams["train"], train=True))

    @property
    def n_val_rows(self) -> int:
        """Validation windows (setting up on first use)."""
        self.setup()
        return len(self._sampler(self._streams["validation"], train=False))

    def train_dataloader(self) -> DataLoader:
        """Windows in an order decided by the seed and the epoch; full batches only."""
        self.setup()
        return self._loader(self._streams["train"], train=True)

    def val_dataloader(self) -> DataLoader:
        """Every validation window, in stream order."""
        self.setup()
        return self._loader(self._streams["validation"], train=False)

    def _stream(self, name: str) -> Tensor:
        tokenized = tokenize(self.splits[name], self.tokenizer, self.cfg.num_proc)
        stream = torch.from_numpy(join_documents(tokenized, self.tokenizer.eos_id))
        if len(stream) < self.block_len:
            raise UserError(
                f"the {name} split has {len(stream)} tokens, fewer than one packed row "
                f"of {self.block_len} (data.seq_len={self.cfg.seq_len}); lower data.seq_len or "
                "add data"
            )
        return stream

    def _sampler(self, stream: Tensor, train: bool) -> EpochWindowSampler:
        return EpochWindowSampler(
            len(stream),
            self.block_len,
            self.stride,
            seed=self.seed,
            shift=train and self.cfg.shift_windows,
            shuffle=train,
        )

    def _loader(self, stream: Tensor, train: bool) -> DataLoader:
        return DataLoader(
            StreamWindows(stream, self.block_len),
            batch_size=self.cfg.batch_size,
            sampler=self._sampler(stream, train),
            drop_last=train,
            collate_fn=self.collator,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
        )
