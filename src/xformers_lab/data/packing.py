"""Tokenize documents, then pack them into fixed-length rows: no padding, no wasted compute.

doc A        doc B     doc C              (token ids)
a a a a </s> b b </s>  c c c c c </s> ... (one stream, each document followed by EOS)
[ window 0 ][ window 1 ] ...              (block_len tokens, a new one every stride tokens)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import Dataset, Features, List, Value

from xformers_lab.data.tokenizers import Tokenizer

PACK_TOKENS_PER_BATCH = 1 << 22
"""Tokens packed per `map` batch; each batch drops its last partial window (< stride tokens)."""


def tokenize(ds: Dataset, tokenizer: Tokenizer, num_proc: int | None = None) -> Dataset:
    """The "text" column as "input_ids" (int32, no specials added)."""
    return ds.map(
        _Encode(tokenizer),
        batched=True,
        remove_columns=ds.column_names,
        features=Features({"input_ids": List(Value("int32"))}),
        num_proc=num_proc,
        desc="tokenizing",
    )


def stream_len(tokenized: Dataset) -> int:
    """Tokens in the packed stream of `tokenized`: its ids plus one EOS per document."""
    ids = tokenized.with_format("arrow")[:]["input_ids"]
    return int(pc.sum(pc.list_value_length(ids)).as_py() or 0) + len(ids)


def pack(tokenized: Dataset, block_len: int, stride: int, eos_id: int) -> Dataset:
    """Join documents with EOS and cut windows of `block_len` tokens every `stride` tokens.

    CLM packs `block_len = seq_len + 1, stride = seq_len`: consecutive rows share one token, so
    inputs and shifted targets waste nothing. MLM and span corruption use `stride = block_len`.
    """
    if not 0 < stride <= block_len:
        raise ValueError(f"need 0 < stride <= block_len, got {stride=} and {block_len=}")
    docs_per_batch = max(1, PACK_TOKENS_PER_BATCH * len(tokenized) // max(1, stream_len(tokenized)))
    packed = tokenized.with_format("arrow").map(
        _Windows(block_len, stride, eos_id),
        batched=True,
        batch_size=docs_per_batch,
        remove_columns=tokenized.column_names,
        features=Features({"input_ids": List(Value("int32"), length=block_len)}),
        desc="packing",
    )
    return packed.with_format(None)


class _Encode:
    """`map` function of `tokenize`: a class, so it pickles for num_proc and hashes for caching."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        return {"input_ids": self.tokenizer.encode_batch(batch["text"])}


class _Windows:
    """`map` function of `pack`, vectorised over one batch of documents."""

    def __init__(self, block_len: int, stride: int, eos_id: int) -> None:
        self.block_len, self.stride, self.eos_id = block_len, stride, eos_id

    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray]:
        docs = batch.column("input_ids").combine_chunks()
        ids = docs.flatten().to_numpy()
        ends = np.asarray(docs.offsets)[1:] - docs.offsets[0].as_py()
        stream = np.insert(ids, ends, self.eos_id)  # each document followed by EOS
        if len(stream) < self.block_len:
            return {"input_ids": np.empty((0, self.block_len), dtype=np.int32)}
        windows = np.lib.stride_tricks.sliding_window_view(stream, self.block_len)
        return {"input_ids": windows[:: self.stride]}  # (rows, block_len)
