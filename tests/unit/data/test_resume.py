"""The data position travels in checkpoints: a run resumed from step k trains on exactly the
batches the uninterrupted run trained on after step k (in memory or streamed, across epochs)."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from datasets import Dataset, DatasetDict, IterableDatasetDict
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from xformers_lab.data.collators import CausalLMCollator
from xformers_lab.data.config import DataConfig
from xformers_lab.data.datamodule import TextDataModule
from xformers_lab.data.streaming import POSITION_KEY
from xformers_lab.data.tokenizers import ByteTokenizer

SEQ_LEN, BATCH = 8, 4
DOCS = [f"doc {i}: " + "xyz" * (i % 5) for i in range(20)]
STEPS, SAVE_AT = 40, 13  # about 3.5 epochs in memory; the save lands mid-epoch


class Recorder(L.LightningModule):
    """Trains nothing; remembers every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        assert POSITION_KEY not in batch  # the data module took it off
        self.seen.append(batch["input_ids"].clone())
        return self.weight.sum() * 0.0 + self.weight.square().sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def datamodule(streaming: bool, num_workers: int = 0) -> TextDataModule:
    splits = DatasetDict(
        train=Dataset.from_dict({"text": DOCS}), validation=Dataset.from_dict({"text": DOCS})
    )
    if streaming:
        splits = IterableDatasetDict({k: v.to_iterable_dataset() for k, v in splits.items()})
    cfg = DataConfig(
        source="pystdlib",
        seq_len=SEQ_LEN,
        batch_size=BATCH,
        streaming=streaming,
        shuffle_buffer=16,
        num_workers=num_workers,
    )
    return TextDataModule(
        cfg,
        ByteTokenizer(n_sentinels=0),
        splits,
        block_len=SEQ_LEN + 1,
        stride=SEQ_LEN,
        collator=CausalLMCollator(),
        seed=11,
    )


def fit(dm: TextDataModule, root: Path, ckpt_path: str | None = None, **kw: object) -> Recorder:
    model = Recorder()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=STEPS,
        max_epochs=-1,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        **kw,  # type: ignore[arg-type]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return model


@pytest.mark.parametrize(
    ("streaming", "num_workers"), [(False, 0), (False, 1), (True, 0), (True, 2)]
)
def test_a_resumed_run_continues_with_the_next_batch(
    tmp_path: Path, streaming: bool, num_workers: int
) -> None:
    saver = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=SAVE_AT, save_top_k=-1)
    full = fit(datamodule(streaming, num_workers), tmp_path, callbacks=[saver])
    assert len(full.seen) == STEPS
    per_epoch = len(datamodule(False).train_dataloader())
    assert 3 * per_epoch < STEPS and SAVE_AT % per_epoch  # crosses epochs, saves mid-epoch
    (checkpoint,) = tmp_path.glob(f"*step={SAVE_AT}.ckpt")
    state = torch.load(checkpoint, weights_only=True)["TextDataModule"]
    assert state["positions"][0][2] > 0
    resumed = fit(datamodule(streaming, num_workers), tmp_path / "again", str(checkpoint))
    assert len(resumed.seen) == STEPS - SAVE_AT
    for got, expected in zip(resumed.seen, full.seen[SAVE_AT:], strict=True):
        assert torch.equal(got, expected)


def test_a_checkpoint_of_other_data_does_not_move_the_position() -> None:
    dm = datamodule(False)
    dm.on_before_batch_transfer(next(iter(dm.train_dataloader())), 0)
    state = dm.state_dict()
    assert state["positions"] == [[0, 0, BATCH]]
    other = datamodule(False)
    other.seed = 12
    other.load_state_dict(state)
    first = next(iter(other.train_dataloader()))
    fresh = datamodule(False)
    fresh.seed = 12
    assert torch.equal(first["input_ids"], next(iter(fresh.train_dataloader()))["input_ids"])
