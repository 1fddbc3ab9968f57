"""`python -m xformers_lab.train` end to end: checkpoint, summary, a falling loss, a model that
rebuilds from its checkpoint alone."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.data.tokenizers import tokenizer_from_state

SUMMARY_KEYS = {
    "best_val_loss", "val_bpb", "final_train_loss", "steps", "tokens_seen",
    "train_tokens_per_sec", "wall_seconds", "n_params", "checkpoint",
}  # fmt: skip


def test_summary_has_every_promised_figure(tiny_run: Path) -> None:
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["steps"] == 30
    assert summary["tokens_seen"] == 30 * 8 * 32
    assert summary["train_tokens_per_sec"] > 0
    assert 0 < summary["val_bpb"] < 8 + 1e-6  # a byte model starts near 8 bits per byte
    assert Path(summary["checkpoint"]).name == "best.ckpt"


def test_loss_falls(tiny_run: Path) -> None:
    rows = list(csv.DictReader((tiny_run / "logs" / "metrics.csv").open()))
    train_losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(train_losses) >= 4
    assert train_losses[-1] < 0.8 * train_losses[0]
    assert train_losses[0] == pytest.approx(math.log(363), rel=0.1)  # uniform over the vocabulary
    lrs = [float(r["train/lr"]) for r in rows if r.get("train/lr")]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.2 * 3e-3  # cosine decay after warmup


def test_checkpoint_rebuilds_model_and_tokenizer_alone(tiny_run: Path) -> None:
    summary = json.loads((tiny_run / "summary.json").read_text())
    ckpt = torch.load(summary["checkpoint"], map_location="cpu", weights_only=True)
    payload = ckpt["xformers_lab"]
    config = TransformerConfig(**payload["model_config"])
    model = build_model(config)
    weights = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    model.load_state_dict(weights)
    tokenizer = tokenizer_from_state(payload["tokenizer"])
    assert tokenizer.vocab_size == config.vocab_size
    ids = torch.tensor([tokenizer.encode("def main():\n    return")])
    assert torch.isfinite(model(ids)[..., : config.vocab_size]).all()
    assert payload["config"]["model"]["n_layers"] == 1 and payload["task"] == "clm"


def test_run_directory_layout(tiny_run: Path) -> None:
    assert (tiny_run / "checkpoints" / "last.ckpt").is_file()
    assert (tiny_run / ".hydra" / "config.yaml").is_file()
    assert not list(tiny_run.rglob("*.tmp"))


def test_load_api_rebuilds_the_trained_model(tiny_run: Path) -> None:
    import xformers_lab

    summary = json.loads((tiny_run / "summary.json").read_text())
    lab = xformers_lab.load(summary["checkpoint"])
    assert lab.task == "clm" and not lab.model.training
    ids = torch.tensor([lab.tokenizer.encode("import os\n")])
    with torch.no_grad():
        assert lab.model(ids).shape == (1, ids.shape[1], lab.config.padded_vocab_size)


def test_truncated_checkpoint_is_reported_by_name(tiny_run: Path, tmp_path: Path) -> None:
    from xformers_lab.checkpoints import read
    from xformers_lab.errors import UserError

    broken = tmp_path / "broken.ckpt"
    broken.write_bytes((tiny_run / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    with pytest.raises(UserError, match=r"broken\.ckpt is corrupt or truncated"):
        read(broken)
