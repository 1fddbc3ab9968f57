"""The jsonl files beside this module as the `datasets` splits of the shipped tasks (each task
YAML names its loader with `custom_dataset: !function xlab_data.<task>`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import DatasetDict, load_dataset

HERE = Path(__file__).resolve().parent


def python_mc(**_: Any) -> DatasetDict:
    return _splits("python_mc")


def python_cloze(**_: Any) -> DatasetDict:
    return _splits("python_cloze")


def python_gen(**_: Any) -> DatasetDict:
    return _splits("python_gen")


def _splits(name: str) -> DatasetDict:
    files = {split: str(HERE / f"{name}.{split}.jsonl") for split in ("train", "test")}
    return load_dataset("json", data_files=files)
