"""Tokenize documents and join them into one stream: fixed-length windows cut from it need no
padding and waste no compute.

doc A        doc B     doc C              (token ids)
a a a a </s> b b </s>  c c c c c </s> ... (one stream, each document followed by EOS)
[ window 0 ][ window 1 ] ...              (block_len tokens, a new one every stride tokens)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, Features, List, Value

from xformers_lab.data.tokenizers import Tokenizer

TOKENIZED_FORMAT = 1
"""Bump when `tokenize` changes what it writes, so stale cache files are not reused."""


def tokenize(ds: Dataset, tokenizer: Tokenizer, num_proc: int | None = None) -> Dataset:
    """The "text" column as "input_ids" (int32, no specials added), cached on disk.

    The result is named by the split's fingerprint and the tokenizer's, so any later run over
    the same text with the same tokenizer memory-maps the cached Arrow file instead of encoding
    again (`datasets.disable_caching()` turns this off).
    """
    fingerprint = tokenized_fingerprint(ds, tokenizer)
    cache: dict[str, Any] = {}
    if datasets.is_caching_enabled():
        folder = Path(datasets.config.HF_DATASETS_CACHE) / "xformers_lab" / "tokenized"
        folder.mkdir(parents=True, exist_ok=True)
        cache = {"cache_file_name": str(folder / f"{fingerprint}.arrow")}
    return ds.map(
        _Encode(tokenizer),
        batched=True,
        remove_columns=ds.column_names,
        features=Features({"input_ids": List(Value("int32"))}),
        num_proc=num_proc,
        new_fingerprint=fingerprint,
        load_from_cache_file=True,
        desc="tokenizing",
        **cache,
    )


def tokenized_fingerprint(ds: Dataset, tokenizer: Tokenizer) -> str:
    """Names `ds` tokenized by `tokenizer`: equal for the same text and the same tokenizer."""
    key = f"tokenized/{TOKENIZED_FORMAT}/{ds._fingerprint}/{tokenizer.fingerprint()}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


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
