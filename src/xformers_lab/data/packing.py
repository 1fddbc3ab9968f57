"""Tokenize documents and join them into one stream: fixed-length windows cut from it need no
padding and waste no compute.

doc A        doc B     doc C              (token ids)
a a a a </s> b b </s>  c c c c c </s> ... (one stream, each document followed by EOS)
[ window 0 ][ window 1 ] ...              (block_len tokens, a new one every stride tokens)
"""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, Features, List, Value

from xformers_lab.data.tokenizers import Tokenizer


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


def join_documents(tokenized: Dataset, eos_id: int) -> np.ndarray:
    """The whole split as one int32 stream, each document followed by EOS.

    Windows are cut from it by `data.windows` (a fixed grid, or one shifted per epoch).
    """
    docs = tokenized.with_format("arrow")[:]["input_ids"].combine_chunks()
    ids = docs.flatten().to_numpy(zero_copy_only=False)
    ends = np.asarray(docs.offsets)[1:] - docs.offsets[0].as_py()
    return np.insert(ids, ends, eos_id).astype(np.int32)


class _Encode:
    """`map` function of `tokenize`: a class, so it pickles for num_proc and hashes for caching."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, batch: dict[str, list[str]]) -> dict[str, list[list[int]]]:
        return {"input_ids": self.tokenizer.encode_batch(batch["text"])}
