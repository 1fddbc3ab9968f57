"""Two ranks under Lightning DDP read distinct shards: in memory, disjoint windows (our sampler,
not a Lightning wrapper around it); streamed, disjoint documents."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xformers_lab.data.tokenizers import ByteTokenizer

HELPER = Path(__file__).with_name("ddp_data_run.py")


def run(mode: str, tmp_path: Path) -> list[dict[str, object]]:
    out = tmp_path / mode
    caches = {"HF_DATASETS_CACHE": str(tmp_path / "hf"), "XFORMERS_LAB_CACHE": str(tmp_path / "x")}
    done = subprocess.run(
        [sys.executable, str(HELPER), mode, str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **caches, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(Path(f"{out}.{rank}.json").read_text()) for rank in range(2)]


def rows(record: dict[str, object]) -> set[tuple[int, ...]]:
    return {tuple(row) for batch in record["seen"] for row in batch}  # type: ignore[union-attr]


def documents(record: dict[str, object]) -> set[str]:
    text = [ByteTokenizer(0).decode(row) for row in rows(record)]
    return {n for t in text for n in re.findall(r"<(\d{3})>", t)}


@pytest.mark.distributed
def test_in_memory_ranks_train_on_disjoint_windows(tmp_path: Path) -> None:
    zero, one = run("memory", tmp_path)
    assert zero["sampler"] == one["sampler"] == "EpochWindowSampler"  # not wrapped by Lightning
    assert len(zero["seen"]) == len(one["seen"]) == 10  # type: ignore[arg-type]
    assert rows(zero).isdisjoint(rows(one))


@pytest.mark.distributed
def test_streamed_ranks_read_disjoint_documents(tmp_path: Path) -> None:
    zero, one = run("streaming", tmp_path)
    assert len(zero["seen"]) == len(one["seen"]) == 10  # type: ignore[arg-type]
    assert documents(zero).isdisjoint(documents(one))
