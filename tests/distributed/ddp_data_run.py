"""Helper run by test_data_shards.py: two CPU ranks (gloo) fit a module that records what each
rank trains on; Lightning relaunches this script for rank 1."""

from __future__ import annotations

import json
import sys
import warnings

import lightning as L
import torch
from datasets import Dataset, DatasetDict, IterableDatasetDict
from torch import nn

from xformers_lab.data.collators import CausalLMCollator
from xformers_lab.data.config import DataConfig
from xformers_lab.data.datamodule import TextDataModule
from xformers_lab.data.tokenizers import ByteTokenizer

DOCS = [f"<{i:03d}>" * (1 + i % 4) for i in range(80)]


class Recorder(L.LightningModule):
    def __init__(self, out: str) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.out, self.seen = out, []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.seen.append(batch["input_ids"].tolist())
        return self.weight.square().sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def on_train_end(self) -> None:
        loader = self.trainer.train_dataloader
        record = {"seen": self.seen, "sampler": type(getattr(loader, "sampler", None)).__name__}
        with open(f"{self.out}.{self.global_rank}.json", "w") as handle:
            json.dump(record, handle)


def main(streaming: bool, out: str) -> None:
    splits = DatasetDict(
        train=Dataset.from_dict({"text": DOCS}), validation=Dataset.from_dict({"text": DOCS})
    )
    if streaming:
        splits = IterableDatasetDict({k: v.to_iterable_dataset() for k, v in splits.items()})
    cfg = DataConfig(source="pystdlib", seq_len=8, batch_size=4, streaming=streaming)
    dm = TextDataModule(
        cfg, ByteTokenizer(0), splits, block_len=9, stride=8, collator=CausalLMCollator(), seed=1
    )
    warnings.simplefilter("ignore")
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_steps=10, max_epochs=-1,
        limit_val_batches=0, logger=False, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(Recorder(out), datamodule=dm)


if __name__ == "__main__":
    main(sys.argv[1] == "streaming", sys.argv[2])
