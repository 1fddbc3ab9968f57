"""TextDataModule: tokenized, packed train/validation rows served as Lightning dataloaders,
from memory or streamed, with the data position saved in every checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from datasets import DatasetDict, IterableDatasetDict
from torch import Tensor
from torch.utils.data import DataLoader

from xformers_lab.data.collators import Collator
from xformers_lab.data.config import DataConfig
from xformers_lab.data.packing import join_documents, tokenize
from xformers_lab.data.streaming import POSITION_KEY, StreamingWindows, unbatched
from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.data.windows import EpochWindowSampler, StreamWindows
from xformers_lab.errors import UserError

log = logging.getLogger(__name__)

SPLITS = ("train", "validation")
STATE_FORMAT = 1


class TextDataModule(L.LightningDataModule):
    """Serves a corpus as batches of fixed-length windows for any objective.

    In memory (default), `setup` tokenizes each split once (cached on disk) into one int32
    token stream; a step costs one gather and the collator. Training windows are shuffled, and
    their grid shifts each epoch when `data.shift_windows` is on; validation is a fixed grid in
    order. With `data.streaming` the splits are read, tokenized and packed on the fly instead
    (`StreamingWindows`). Either way each rank reads a distinct shard.

    The position of the last training batch consumed is the module's `state_dict`, which
    Lightning saves in checkpoints: a resumed run starts its data there, without replaying.
    """

    def __init__(
        self,
        cfg: DataConfig,
        tokenizer: Tokenizer,
        splits: DatasetDict | IterableDatasetDict,
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
        self.collator = _with_documents(collator, tokenizer) if cfg.document_mask else collator
        self.seed = seed
        self._streams: dict[str, Tensor] = {}
        self._position: dict[int, tuple[int, int]] = {}
        """Reader -> (epoch, windows of the epoch consumed) of the last training batch."""
        self._last_reader = 0
        self._resume: dict[str, Any] | None = None

    def setup(self, stage: str | None = None) -> None:
        """Tokenize both splits into streams (in memory only); later calls do nothing."""
        if self._streams or self.cfg.streaming:
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
    def n_train_rows(self) -> int | None:
        """Training windows per epoch for this rank (setting up on first use); None when
        streaming (the length is not known before reading)."""
        self.setup()
        return None if self.cfg.streaming else len(self._sampler(self._streams["train"], True))

    @property
    def n_val_rows(self) -> int | None:
        """Validation windows for this rank (setting up on first use); None when streaming."""
        self.setup()
        if self.cfg.streaming:
            return None
        return len(self._sampler(self._streams["validation"], train=False))

    def train_dataloader(self) -> DataLoader:
        """Windows in an order decided by the seed and the epoch; full batches only."""
        if self.cfg.streaming:
            return self._streaming_loader("train")
        self.setup()
        sampler = self._sampler(self._streams["train"], train=True)
        if self._resume is not None:
            self._resume_sampler(sampler, self._resume)
        return PositionedLoader(
            StreamWindows(self._streams["train"], self.block_len),
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            drop_last=True,
            collate_fn=self.collator,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
            generator=self._loader_generator(),
        )

    def val_dataloader(self) -> DataLoader:
        """Every validation window (this rank's share), in stream order."""
        if self.cfg.streaming:
            return self._streaming_loader("validation")
        self.setup()
        return DataLoader(
            StreamWindows(self._streams["validation"], self.block_len),
            batch_size=self.cfg.batch_size,
            sampler=self._sampler(self._streams["validation"], train=False),
            collate_fn=self.collator,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
            generator=self._loader_generator(),
        )

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Take the data position off each batch; remember it for training batches (the ones
        the loop consumes: loaders and Lightning may have fetched further ahead)."""
        if isinstance(batch, dict) and POSITION_KEY in batch:
            reader, epoch, consumed = batch.pop(POSITION_KEY).tolist()
            if self.trainer is None or self.trainer.training:
                self._position[reader] = (epoch, consumed)
                self._last_reader = reader
        return batch

    def state_dict(self) -> dict[str, Any]:
        """Where the training data stands: plain python, saved in every checkpoint."""
        positions = sorted((r, e, c) for r, (e, c) in self._position.items())
        if self.cfg.streaming:
            positions = _gathered(positions)
        if not positions:
            return {}
        return {
            "format": STATE_FORMAT,
            "streaming": self.cfg.streaming,
            "seed": self.seed,
            "geometry": [self.block_len, self.stride, self.cfg.shift_windows],
            "n_windows": None if self.cfg.streaming else self._n_windows(),
            "readers": self._readers() if self.cfg.streaming else 1,
            "positions": [list(p) for p in positions],
            "next_worker": (self._last_reader + 1) % max(1, self.cfg.num_workers),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume from `state_dict()` when the training loader is next built."""
        self._resume = state_dict or None

    def _resume_sampler(self, sampler: EpochWindowSampler, state: dict[str, Any]) -> None:
        problem = self._mismatch(state)
        if problem is None and state["n_windows"] != sampler.n_windows:
            problem = f"{state['n_windows']} windows per epoch, now {sampler.n_windows}"
        if problem is not None:
            log.warning("data position not restored: the checkpoint's data differs (%s)", problem)
            return
        (_, epoch, consumed), *_ = state["positions"]
        sampler.resume(epoch, consumed)

    def _mismatch(self, state: dict[str, Any]) -> str | None:
        if state.get("format") != STATE_FORMAT or state.get("streaming") != self.cfg.streaming:
            return "another data format (streaming or not)"
        if state["seed"] != self.seed:
            return f"seed {state['seed']}, now {self.seed}"
        if state["geometry"] != [self.block_len, self.stride, self.cfg.shift_windows]:
            return "another window length, stride or shift_windows"
        return None

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
        rank, world_size = self._rank_and_world()
        return EpochWindowSampler(
            len(stream),
            self.block_len,
            self.stride,
            seed=self.seed,
            shift=train and self.cfg.shift_windows,
            shuffle=train,
            rank=rank,
            world_size=world_size,
        )

    def _loader_generator(self) -> torch.Generator:
        """The loader's own generator: without one, starting an iteration draws a worker seed
        from the global RNG, and a resumed run's dropout would drift from the original's."""
        return torch.Generator().manual_seed(self.seed)

    def _n_windows(self) -> int:
        return self._sampler(self._streams["train"], train=True).n_windows

    def _streaming_loader(self, name: str) -> DataLoader:
        train = name == "train"
        rank, world_size = self._rank_and_world()
        windows = StreamingWindows(
            self.splits[name],
            self.tokenizer,
            self.collator,
            block_len=self.block_len,
            stride=self.stride,
            batch_size=self.cfg.batch_size,
            seed=self.seed,
            shift=train and self.cfg.shift_windows,
            shuffle_buffer=self.cfg.shuffle_buffer if train else 0,
            repeat=train,
            rank=rank,
            world_size=world_size,
        )
        if train and self._resume is not None:
            windows.start, windows.rotate = self._stream_start(self._resume)
        return DataLoader(
            windows,
            batch_size=None,
            collate_fn=unbatched,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
            generator=self._loader_generator(),
        )

    def _stream_start(self, state: dict[str, Any]) -> tuple[dict[int, tuple[int, int]], int]:
        """Each reader's (epoch, windows consumed), and the worker whose turn is next."""
        problem = self._mismatch(state)
        if problem is not None:
            log.warning("data position not restored: the checkpoint's data differs (%s)", problem)
            return {}, 0
        if state["readers"] != self._readers():
            epoch = min(e for _, e, _ in state["positions"])
            log.warning(
                "data position restored to the start of epoch %d only: the checkpoint had %d "
                "readers (ranks x workers), now %d",
                epoch,
                state["readers"],
                self._readers(),
            )
            return dict.fromkeys(range(self._readers()), (epoch, 0)), 0
        start = {reader: (epoch, consumed) for reader, epoch, consumed in state["positions"]}
        return start, state["next_worker"]

    def _readers(self) -> int:
        return self._rank_and_world()[1] * max(1, self.cfg.num_workers)

    def _rank_and_world(self) -> tuple[int, int]:
        if self.trainer is not None:
            return self.trainer.global_rank, self.trainer.world_size
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1


class PositionedLoader(DataLoader):
    """A map-style loader whose batches carry their data position (reader 0: the position of
    the sampler's order is the same on every rank)."""

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        sampler: EpochWindowSampler = self.sampler  # type: ignore[assignment]
        per_batch = self.batch_size * sampler.num_replicas  # type: ignore[operator]
        for n, batch in enumerate(super().__iter__(), start=1):
            epoch, skipped = sampler.started_at
            batch[POSITION_KEY] = torch.tensor([0, epoch, skipped + n * per_batch])
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Empty: the position is `TextDataModule.state_dict`, taken from the batches the loop
        consumed. Having the method tells Lightning the loader resumes mid-epoch."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to load (see `state_dict`)."""


def _with_documents(collator: Callable[[Tensor], dict[str, Tensor]], tokenizer: Tokenizer) -> Any:
    if not isinstance(collator, Collator) or not collator.supports_document_ids:
        raise UserError(
            f"data.document_mask=true is not supported by this objective's collator "
            f"({type(collator).__name__}); set data.document_mask=false"
        )
    return collator.with_document_ids(tokenizer.eos_id)


def _gathered(positions: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Every rank's reader positions (checkpoints are dumped on all ranks, written by one)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return positions
    everyone: list[list[tuple[int, int, int]]] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(everyone, positions)
    return sorted(p for rank_positions in everyone for p in rank_positions)
