"""TextDataModule: packs once, serves (B, seq_len) batches, shuffles from the seed only."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from datasets import Dataset, DatasetDict

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.data import datamodule as datamodule_module
from xformers_lab.data.collators import CausalLMCollator, Collator
from xformers_lab.data.config import DataConfig
from xformers_lab.data.datamodule import TextDataModule
from xformers_lab.data.tokenizers import ByteTokenizer
from xformers_lab.errors import UserError

OneLine = Callable[[pytest.ExceptionInfo[BaseException]], str]
SEQ_LEN, BATCH = 8, 4


def corpus(n_train: int = 30, n_val: int = 5) -> DatasetDict:
    return DatasetDict(
        train=Dataset.from_dict({"text": [f"train document {i:02d}." for i in range(n_train)]}),
        validation=Dataset.from_dict({"text": [f"val doc {i}." for i in range(n_val)]}),
    )


def make(splits: DatasetDict | None = None, seed: int = 0, **fields: int) -> TextDataModule:
    cfg = DataConfig(source="pystdlib", seq_len=SEQ_LEN, batch_size=BATCH, **fields)
    return TextDataModule(
        cfg,
        ByteTokenizer(n_sentinels=0),
        corpus() if splits is None else splits,
        block_len=SEQ_LEN + 1,
        stride=SEQ_LEN,
        collator=CausalLMCollator(),
        seed=seed,
    )


def inputs(loader: torch.utils.data.DataLoader) -> list[torch.Tensor]:
    return [batch["input_ids"] for batch in loader]


def test_batches_have_the_model_shapes_and_shifted_labels() -> None:
    dm = make()
    batches = list(dm.train_dataloader())
    assert len(batches) == dm.n_train_rows // BATCH  # full batches only
    for batch in batches:
        assert batch["input_ids"].shape == batch["labels"].shape == (BATCH, SEQ_LEN)
        assert batch["input_ids"].dtype == torch.long
        assert torch.equal(batch["input_ids"][:, 1:], batch["labels"][:, :-1])


def test_validation_serves_every_row_in_stream_order() -> None:
    dm = make()
    batches = list(dm.val_dataloader())
    ids = torch.cat([b["input_ids"] for b in batches])
    labels = torch.cat([b["labels"] for b in batches])
    assert len(ids) == dm.n_val_rows and len(batches) == -(-dm.n_val_rows // BATCH)
    assert torch.equal(labels[:-1, -1], ids[1:, 0])  # consecutive rows continue the stream
    assert ByteTokenizer(n_sentinels=0).decode(ids[:2].flatten()) == "val doc 0.</s>val d"


def test_the_seed_alone_decides_the_order() -> None:
    first = inputs(make(seed=7).train_dataloader())
    again = inputs(make(seed=7).train_dataloader())
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    other = inputs(make(seed=8).train_dataloader())
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    in_order = torch.cat(inputs(make(seed=7).val_dataloader()))
    assert not torch.equal(torch.cat(first)[: len(in_order)], in_order)


def test_setup_tokenizes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_tokenize = datamodule_module.tokenize
    monkeypatch.setattr(
        datamodule_module, "tokenize", lambda *a, **k: calls.append(1) or real_tokenize(*a, **k)
    )
    dm = make()
    dm.setup("fit")
    dm.setup("validate")
    assert dm.n_train_rows > 0 and len(calls) == 2  # one per split
    list(dm.train_dataloader())
    assert len(calls) == 2


def test_training_windows_shift_between_epochs_unless_disabled() -> None:
    def starts_of_two_epochs(dm: TextDataModule) -> tuple[set[int], set[int]]:
        sampler = dm.train_dataloader().sampler
        first = set(sampler)
        sampler.set_epoch(1)  # what Lightning does before each epoch
        return first, set(sampler)

    shifted, fixed = (
        starts_of_two_epochs(make(seed=1)),
        starts_of_two_epochs(make(seed=1, shift_windows=False)),
    )
    assert fixed[0] == fixed[1]  # the same windows, in another order
    assert shifted[0].isdisjoint(shifted[1])  # a new grid


def test_workers_give_the_same_batches() -> None:
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            inputs(make(seed=3).train_dataloader()),
            inputs(make(seed=3, num_workers=1).train_dataloader()),
            strict=True,
        )
    )


def test_a_split_shorter_than_one_row_fails_in_one_line(one_line: OneLine) -> None:
    splits = corpus()
    splits["validation"] = Dataset.from_dict({"text": ["tiny"]})
    with pytest.raises(UserError) as err:
        make(splits).setup()
    assert one_line(err) == (
        "the validation split has 5 tokens, fewer than one packed row of 9 (data.seq_len=8); "
        "lower data.seq_len or add data"
    )


def test_fewer_rows_than_a_batch_fails_in_one_line(one_line: OneLine) -> None:
    with pytest.raises(UserError) as err:
        make(corpus(n_train=1)).setup()
    assert "the train split packs to 1 rows of 9 tokens, fewer than data.batch_size=4" in one_line(
        err
    )


def test_document_mask_gives_batches_the_document_of_each_input() -> None:
    dm = make(document_mask=True)
    for batch in dm.val_dataloader():
        ids, docs = batch["input_ids"], batch["document_ids"]
        assert docs.shape == ids.shape
        # a document starts after each EOS: the next id is one more, within the row
        after_eos = torch.zeros_like(ids, dtype=torch.bool)
        after_eos[:, 1:] = ids[:, :-1] == ByteTokenizer.eos_id
        assert torch.equal(docs[:, 1:] - docs[:, :-1], after_eos[:, 1:].long())
        assert (docs[:, 0] == 0).all()


def test_document_mask_needs_an_objective_that_supports_it(one_line: OneLine) -> None:
    class Plain(Collator):
        def collate(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"input_ids": rows}

    cfg = DataConfig(source="pystdlib", seq_len=SEQ_LEN, batch_size=BATCH, document_mask=True)
    with pytest.raises(UserError) as err:
        TextDataModule(cfg, ByteTokenizer(0), corpus(), SEQ_LEN, SEQ_LEN, Plain(), seed=0)
    assert one_line(err) == (
        "data.document_mask=true is not supported by this objective's collator (Plain); "
        "set data.document_mask=false"
    )


def test_changing_one_document_of_a_packed_row_leaves_the_others_outputs_unchanged() -> None:
    """Through the real path: corpus -> packed rows -> collator -> decoder with document ids."""
    docs = [f"document {i} says {'abc' * i}." for i in range(12)]
    changed = [*docs[:5], docs[5].upper(), *docs[6:]]  # same length, other text
    torch.manual_seed(0)
    model = build_model(
        TransformerConfig(vocab_size=262, d_model=32, n_heads=4, n_layers=2, max_seq_len=64)
    ).eval()

    def outputs(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        splits = DatasetDict(
            train=Dataset.from_dict({"text": texts * 3}),
            validation=Dataset.from_dict({"text": texts}),
        )
        cfg = DataConfig(source="pystdlib", seq_len=64, batch_size=2, document_mask=True)
        dm = TextDataModule(
            cfg,
            ByteTokenizer(0),
            splits,
            block_len=65,
            stride=64,
            collator=CausalLMCollator(),
            seed=0,
        )
        batch = next(iter(dm.val_dataloader()))
        logits = model(batch["input_ids"], document_ids=batch["document_ids"])
        return batch["input_ids"], batch["document_ids"], logits

    ids, docs_ids, before = outputs(docs)
    changed_ids, _, after = outputs(changed)
    differs = ids != changed_ids
    assert differs.any()
    touched = torch.zeros_like(differs)  # every token of a document that holds a change
    for row in range(ids.shape[0]):
        for doc in docs_ids[row][differs[row]].unique():
            touched[row] |= docs_ids[row] == doc
    assert (~touched).sum() > touched.sum()  # other documents share the rows
    assert torch.equal(before[~touched], after[~touched])
    assert not torch.allclose(before[touched], after[touched])
