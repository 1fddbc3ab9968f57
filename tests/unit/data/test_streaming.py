"""Streaming: the same windows as the in-memory path for the same seed, disjoint reader shards,
streamed corpora from files, and the datamodule's streaming loaders."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from datasets import Dataset, DatasetDict, IterableDatasetDict

from xformers_lab.data.collators import CausalLMCollator
from xformers_lab.data.config import DataConfig
from xformers_lab.data.corpora import load_corpus
from xformers_lab.data.datamodule import TextDataModule
from xformers_lab.data.packing import join_documents, tokenize
from xformers_lab.data.streaming import POSITION_KEY, reader_documents
from xformers_lab.data.tokenizers import ByteTokenizer
from xformers_lab.errors import UserError

OneLine = Callable[[pytest.ExceptionInfo[BaseException]], str]
SEQ_LEN, BATCH, SEED = 16, 6, 3
DOCS = [f"document {i}: " + "abcdefghij"[: i % 11] * (1 + i % 3) for i in range(240)]
TOKENIZER = ByteTokenizer(n_sentinels=0)


def in_memory(docs: list[str] = DOCS) -> DatasetDict:
    return DatasetDict(
        train=Dataset.from_dict({"text": docs}),
        validation=Dataset.from_dict({"text": docs[:30]}),
    )


def streamed(docs: list[str] = DOCS, shards: int = 1) -> IterableDatasetDict:
    return IterableDatasetDict(
        {
            name: split.to_iterable_dataset(num_shards=shards)
            for name, split in in_memory(docs).items()
        }
    )


def make(
    splits: DatasetDict | IterableDatasetDict, seed: int = SEED, **fields: object
) -> TextDataModule:
    cfg = DataConfig(
        source="pystdlib",
        seq_len=SEQ_LEN,
        batch_size=BATCH,
        streaming=isinstance(splits, IterableDatasetDict),
        **fields,  # type: ignore[arg-type]
    )
    return TextDataModule(
        cfg,
        TOKENIZER,
        splits,
        block_len=SEQ_LEN + 1,
        stride=SEQ_LEN,
        collator=CausalLMCollator(),
        seed=seed,
    )


def rows(batches: list[dict[str, torch.Tensor]]) -> list[tuple[int, ...]]:
    return [tuple(row) for batch in batches for row in batch["input_ids"].tolist()]


def epochs_in_memory(dm: TextDataModule, n_epochs: int) -> list[list[tuple[int, ...]]]:
    loader = dm.train_dataloader()
    out = []
    for epoch in range(n_epochs):
        loader.sampler.set_epoch(epoch)
        out.append(rows(list(loader)))
    return out


def epochs_streamed(
    dm: TextDataModule, n_epochs: int, per_epoch: int
) -> list[list[tuple[int, ...]]]:
    batches = iter(dm.train_dataloader())  # streaming training repeats epochs forever
    return [rows([next(batches) for _ in range(per_epoch)]) for _ in range(n_epochs)]


def test_streaming_yields_the_in_memory_windows_for_the_same_seed() -> None:
    memory = make(in_memory())
    per_epoch = len(memory.train_dataloader())
    assert memory.n_train_rows == per_epoch * BATCH  # nothing dropped: the epochs compare whole
    expected = epochs_in_memory(memory, 3)
    got = epochs_streamed(make(streamed(), shuffle_buffer=64), 3, per_epoch)
    for epoch_rows, epoch_expected in zip(got, expected, strict=True):
        assert sorted(epoch_rows) == sorted(epoch_expected)  # the same windows: grid and count
    assert len({tuple(sorted(e)) for e in expected}) == 3  # each epoch has its own grid
    assert got == epochs_streamed(make(streamed(), shuffle_buffer=64), 3, per_epoch)
    assert got != epochs_streamed(make(streamed(), seed=SEED + 1, shuffle_buffer=64), 3, per_epoch)


def test_without_a_shuffle_buffer_the_stream_comes_in_order() -> None:
    stream = join_documents(tokenize(in_memory()["train"], TOKENIZER), TOKENIZER.eos_id)
    dm = make(streamed(), shuffle_buffer=0, shift_windows=False)
    (first_epoch,) = epochs_streamed(dm, 1, len(make(in_memory()).train_dataloader()))
    inputs = [token for row in first_epoch for token in row]  # inputs of consecutive rows abut
    assert inputs == stream[: len(inputs)].tolist()


def test_validation_streams_the_same_rows_in_the_same_order() -> None:
    memory = rows(list(make(in_memory()).val_dataloader()))
    assert rows(list(make(streamed()).val_dataloader())) == memory
    assert rows(list(make(streamed()).val_dataloader())) == memory  # and again next evaluation


@pytest.mark.parametrize("shards", [1, 4])
def test_readers_get_disjoint_documents_that_together_cover_the_split(shards: int) -> None:
    split = streamed(shards=shards)["train"]
    for readers in (2, 3, 4):
        parts = [
            [row["text"] for row in reader_documents(split, r, readers)] for r in range(readers)
        ]
        union = [doc for part in parts for doc in part]
        assert sorted(union) == sorted(DOCS) and len(set(union)) == len(DOCS)
        assert all(parts)


NUMBERED = [f"<{i:03d}>" * (1 + i % 4) for i in range(240)]
"""Documents whose number survives in any window long enough to hold one copy of it."""


def numbers(batches: list[dict[str, torch.Tensor]]) -> set[str]:
    return {n for row in rows(batches) for n in re.findall(r"<(\d{3})>", TOKENIZER.decode(row))}


def test_two_ranks_stream_disjoint_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    per_rank = []
    for rank in range(2):
        dm = make(streamed(NUMBERED), shuffle_buffer=0)
        monkeypatch.setattr(dm, "_rank_and_world", lambda rank=rank: (rank, 2))
        batches = iter(dm.train_dataloader())
        per_rank.append([next(batches) for _ in range(10)])
    assert numbers(per_rank[0]).isdisjoint(numbers(per_rank[1]))
    assert [b[POSITION_KEY][0].item() for b in per_rank[1]] == [1] * 10  # reader = rank 1


def test_dataloader_workers_are_readers_too() -> None:
    dm = make(streamed(NUMBERED, shards=2), num_workers=2, shuffle_buffer=0)
    batches = iter(dm.train_dataloader())
    first = [next(batches) for _ in range(6)]
    assert [b[POSITION_KEY][0].item() for b in first] == [0, 1, 0, 1, 0, 1]
    assert numbers(first[0::2]).isdisjoint(numbers(first[1::2]))


def test_a_reader_without_a_full_batch_fails_in_one_line(one_line: OneLine) -> None:
    dm = make(streamed(DOCS[:3]))
    with pytest.raises(UserError) as err:
        next(iter(dm.train_dataloader()))
    assert "streamed reader 0 of 1 (ranks x dataloader workers) gets no full batch of 6" in (
        one_line(err)
    )


def test_text_files_stream(tmp_path: Path) -> None:
    lines = "".join(json.dumps({"body": doc}) + "\n" for doc in DOCS)
    (tmp_path / "a.jsonl").write_text(lines, encoding="utf-8")
    cfg = DataConfig(
        source="text", path=str(tmp_path / "*.jsonl"), text_field="body", streaming=True
    )
    corpus = load_corpus(cfg)
    assert isinstance(corpus, IterableDatasetDict)
    train, val = ([row["text"] for row in corpus[name]] for name in ("train", "validation"))
    assert sorted(train + val) == sorted(DOCS) and 0 < len(val) < len(DOCS) / 5
    again = load_corpus(cfg)  # the hold-out hashes the text: the same documents every time
    assert [row["text"] for row in again["validation"]] == val


def test_the_embedded_corpus_streams_too() -> None:
    corpus = load_corpus(DataConfig(source="pystdlib", max_bytes=200_000, streaming=True))
    assert isinstance(corpus, IterableDatasetDict)
    assert next(iter(corpus["train"]))["text"]


@pytest.mark.parametrize(
    ("content", "fields", "message"),
    [
        ("", {}, "holds no text (empty files)"),
        (" \n\n\t", {"sample_by": "line"}, "holds no text (empty or whitespace only)"),
        ('{"body": "x"}\n', {"name": "r.jsonl"}, "data.text_field='text' is not a column of"),
        (b"caf\xe9\n", {}, "is not UTF-8 text"),
        ("one document only\n", {}, "data.streaming=true holds out whole documents"),
    ],
)
def test_bad_streamed_files_fail_in_one_line(
    tmp_path: Path, one_line: OneLine, content: str | bytes, fields: dict[str, str], message: str
) -> None:
    path = tmp_path / fields.pop("name", "data.txt")
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UserError) as err:
        load_corpus(DataConfig(source="text", path=str(path), streaming=True, **fields))  # type: ignore[arg-type]
    assert message in one_line(err)
