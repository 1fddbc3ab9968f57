"""The data options end to end: a sentencepiece tokenizer, streaming and document masking in one
real training run, whose checkpoint then loads with no corpus and no tokenizer cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import xformers_lab
from xformers_lab.data.tokenizers import ByteTokenizer, UnigramTokenizer, check_same_tokenizer
from xformers_lab.errors import UserError


@pytest.fixture(scope="module")
def spm_run(tmp_path_factory: pytest.TempPathFactory, tiny: list[str]) -> Path:
    root = tmp_path_factory.mktemp("spm_run")
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(
        XFORMERS_LAB_CACHE=str(root / "cache"),
        HF_DATASETS_CACHE=str(root / "hf"),
        HF_HUB_OFFLINE="1",
    )
    args = [
        *tiny,
        "tokenizer=spm_unigram",
        "tokenizer.vocab_size=1000",
        "data.streaming=true",
        "data.document_mask=true",
        f"hydra.run.dir={root / 'run'}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "xformers_lab.train", *args],
        cwd=root, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(list((root / "cache" / "tokenizers").glob("spm_unigram-*.model"))) == 1
    return root / "run"


def test_the_run_trains_and_reports(spm_run: Path) -> None:
    summary = json.loads((spm_run / "summary.json").read_text())
    assert summary["steps"] == 30 and 0 < summary["val_bpb"] < 8


def test_the_checkpoint_carries_the_tokenizer_and_the_data_position(spm_run: Path) -> None:
    summary = json.loads((spm_run / "summary.json").read_text())
    lab = xformers_lab.load(summary["last_checkpoint"])  # no corpus, no tokenizer cache needed
    assert isinstance(lab.tokenizer, UnigramTokenizer) and lab.tokenizer.vocab_size == 1000
    text = "def main():\n    return 'ünïcode ✓'\n"
    assert lab.tokenizer.decode(lab.tokenizer.encode(text)) == text
    checkpoint = torch.load(summary["last_checkpoint"], weights_only=True)
    state = checkpoint["TextDataModule"]
    assert state["streaming"] and state["positions"][0][2] > 0  # windows consumed, saved
    check_same_tokenizer(checkpoint["xformers_lab"]["tokenizer"], lab.tokenizer, "init_from=x")
    with pytest.raises(UserError, match=r"^x: the checkpoint's tokenizer"):
        check_same_tokenizer(checkpoint["xformers_lab"]["tokenizer"], ByteTokenizer(100), "x")
