"""Streaming: documents read lazily, tokenized and packed on the fly into the windows the
in-memory path cuts, each rank and dataloader worker reading its own documents.

    reader k of K (K = ranks x workers)     documents k, k + K, ...  (or whole shards)
      tokenize in batches -> its own EOS-joined stream -> windows on the epoch's grid
      -> seeded shuffle buffer -> batches, collated in the worker, stamped with the position

With one reader an epoch's windows are exactly those of `EpochWindowSampler` over the same text
(same grid offset, same count); only their order differs (a buffer instead of a permutation).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from datasets import IterableDataset as DocumentStream
from datasets.distributed import split_dataset_by_node
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from xformers_lab.data.tokenizers import Tokenizer
from xformers_lab.data.windows import grid_offset
from xformers_lab.errors import UserError

POSITION_KEY = "data_position"
"""Batch entry (reader, epoch, windows of the epoch consumed) that the data module pops."""
DOCUMENT_BATCH = 256
"""Documents tokenized per call into the tokenizer."""


class StreamingWindows(IterableDataset[dict[str, Tensor]]):
    """Batches of packed windows from a document stream, for `DataLoader(batch_size=None)`.

    Args:
        documents: the split, a `datasets.IterableDataset` with a "text" column.
        tokenizer, collator: ids for the text; the objective's batch from (B, block_len) rows.
        block_len, stride, seed, shift: the window grid of `EpochWindowSampler`.
        batch_size: windows per batch; a reader's last partial batch of an epoch is dropped
            when `repeat` (training) and kept otherwise.
        shuffle_buffer: windows held to shuffle among (0 or 1: stream order).
        repeat: start the next epoch (a new grid offset and order) when one ends, forever.
        rank, world_size: this process among the data-parallel ranks.
    """

    def __init__(
        self,
        documents: DocumentStream,
        tokenizer: Tokenizer,
        collator: Callable[[Tensor], dict[str, Tensor]],
        *,
        block_len: int,
        stride: int,
        batch_size: int,
        seed: int,
        shift: bool,
        shuffle_buffer: int,
        repeat: bool,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        self.documents, self.tokenizer, self.collator = documents, tokenizer, collator
        self.block_len, self.stride, self.batch_size = block_len, stride, batch_size
        self.seed, self.shift, self.shuffle_buffer = seed, shift, shuffle_buffer
        self.repeat, self.rank, self.world_size = repeat, rank, world_size
        self.start: dict[int, tuple[int, int]] = {}
        """Reader -> (epoch, windows of it already consumed): where each reader resumes."""
        self.rotate = 0
        """Worker w reads as reader (w + rotate) mod workers of its rank. A loader takes
        batches from its workers in turn starting with worker 0, so a resumed run rotates
        the readers to continue with the one whose turn was next."""

    def readers(self, num_workers: int) -> int:
        """Readers in all: every dataloader worker of every rank (the main process counts as
        one worker when there are none)."""
        return self.world_size * max(1, num_workers)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        reader = self.rank * workers + (worker + self.rotate) % workers
        readers = self.world_size * workers
        documents = reader_documents(self.documents, reader, readers)
        epoch, skip = self.start.get(reader, (0, 0))
        while True:
            batches = 0
            for batch in self._epoch_batches(documents, reader, epoch, skip):
                batches += 1
                yield batch
            if not self.repeat:
                return
            if batches == 0 and skip == 0:
                raise UserError(
                    f"streamed reader {reader} of {readers} (ranks x dataloader workers) gets no "
                    f"full batch of {self.batch_size} rows of {self.block_len} tokens per epoch; "
                    "lower data.batch_size or data.seq_len, use fewer workers, or add data"
                )
            epoch, skip = epoch + 1, 0

    def _epoch_batches(
        self, documents: DocumentStream, reader: int, epoch: int, skip: int
    ) -> Iterator[dict[str, Tensor]]:
        """One epoch of this reader's batches, after the first `skip` windows (not collated)."""
        rows: list[Tensor] = []
        windows = self._shuffled(self.windows(documents, epoch), reader, epoch)
        for consumed, window in enumerate(itertools.islice(windows, skip, None), start=skip + 1):
            rows.append(window)
            if len(rows) == self.batch_size:
                yield self._batch(rows, reader, epoch, consumed)
                rows = []
        if rows and not self.repeat:
            yield self._batch(rows, reader, epoch, consumed)

    def windows(self, documents: DocumentStream, epoch: int) -> Iterator[Tensor]:
        """The windows of one epoch in stream order: every `stride` tokens from the epoch's grid
        offset, each released only once the stream is long enough that the in-memory path
        (which sizes every epoch for the largest offset) has it too."""
        offset = grid_offset(self.seed, epoch, self.stride, self.shift)
        lag = self.stride - 1 - offset if self.shift else 0
        eos = [self.tokenizer.eos_id]
        buffer, base, start = np.empty(0, dtype=np.int32), 0, offset  # base: buffer[0]'s place
        for batch in documents.iter(batch_size=DOCUMENT_BATCH):
            ids = self.tokenizer.encode_batch(batch["text"])
            joined = itertools.chain.from_iterable(doc + eos for doc in ids)
            count = sum(len(doc) + 1 for doc in ids)
            buffer = np.concatenate([buffer, np.fromiter(joined, dtype=np.int32, count=count)])
            end = base + len(buffer)
            while start + self.block_len + lag <= end:
                yield torch.from_numpy(buffer[start - base : start - base + self.block_len].copy())
                start += self.stride
            if start > base:
                buffer, base = buffer[start - base :], start

    def _shuffled(self, windows: Iterator[Tensor], reader: int, epoch: int) -> Iterator[Tensor]:
        if self.shuffle_buffer <= 1:
            yield from windows
            return
        rng = np.random.default_rng([self.seed, epoch, reader])
        held: list[Tensor] = []
        for window in windows:
            if len(held) < self.shuffle_buffer:
                held.append(window)
                continue
            i = int(rng.integers(len(held)))
            yield held[i]
            held[i] = window
        rng.shuffle(held)  # type: ignore[arg-type]
        yield from held

    def _batch(self, rows: list[Tensor], reader: int, epoch: int, consumed: int) -> dict[str, Any]:
        batch = dict(self.collator(torch.stack(rows)))
        batch[POSITION_KEY] = torch.tensor([reader, epoch, consumed])
        return batch


def reader_documents(documents: DocumentStream, reader: int, readers: int) -> DocumentStream:
    """Reader `reader` of `readers`'s documents: whole shards when the stream's shards divide
    evenly among the readers, else every `readers`-th document. Disjoint; together, all."""
    if readers == 1:
        return documents
    return split_dataset_by_node(documents, rank=reader, world_size=readers)


def unbatched(batch: Any) -> Any:
    """`collate_fn` of a loader whose dataset yields whole batches."""
    return batch
