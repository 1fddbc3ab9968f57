"""`model=t5 task=span` end to end: the loss falls, tokens are counted on both sides, the
checkpoint rebuilds the encoder-decoder alone, and impossible span settings fail in one line."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

import xformers_lab
from xformers_lab.cli import compose_config
from xformers_lab.core.encoder_decoder import EncoderDecoderLM
from xformers_lab.training.run import train

T5 = ["model=t5", "task=span", "model.n_decoder_layers=1"]


@pytest.fixture(scope="module")
def t5_run(tmp_path_factory: pytest.TempPathFactory, tiny: list[str]) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("t5")
    summary = train(compose_config("train", [*T5, *tiny]), run_dir)
    return run_dir, summary


def test_span_corruption_trains_and_its_loss_falls(t5_run: tuple[Path, dict]) -> None:
    run_dir, summary = t5_run
    assert summary["task"] == "span" and summary["steps"] == 30
    rows = list(csv.DictReader((run_dir / "logs" / "metrics.csv").open()))
    train_losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert train_losses[0] == pytest.approx(math.log(363), rel=0.1)  # uniform over the vocabulary
    assert summary["best_val_loss"] < 0.8 * math.log(363)
    assert 0 < summary["val_bpb"] < 8 + 1e-6


def test_tokens_seen_count_encoder_inputs_and_decoder_targets(t5_run: tuple[Path, dict]) -> None:
    # seq_len 32 at 15% noise in spans of 3: windows of 34 tokens, targets of 5 + 2 + 1 = 8
    assert t5_run[1]["tokens_seen"] == 30 * 8 * (32 + 8)


def test_checkpoint_rebuilds_the_encoder_decoder(t5_run: tuple[Path, dict]) -> None:
    loaded = xformers_lab.load(t5_run[1]["checkpoint"])
    assert isinstance(loaded.model, EncoderDecoderLM) and loaded.task == "span"
    assert loaded.config.position == "t5" and loaded.config.attn_scale == 1.0
    text = loaded.tokenizer.encode("def f(x):<extra_id_0> x", parse_special=True)
    ids = torch.tensor([[*text, loaded.tokenizer.eos_id]])
    start = torch.tensor([[loaded.tokenizer.pad_id]])
    logits = loaded.model(ids, decoder_input_ids=start)
    assert logits.shape == (1, 1, loaded.config.padded_vocab_size)
    assert torch.isfinite(logits[..., : loaded.tokenizer.vocab_size]).all()


def test_task_span_needs_an_encoder_decoder(
    train_main, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = train_main(["task=span", f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "task=span trains encoder_decoder models but model.arch=decoder" in err
    assert "task=span with model=t5" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["task.noise_density=0"], "noise_density must be in (0, 1)"),
        (["task.mean_noise_span_length=0.5"], "mean_noise_span_length must be >= 1"),
        (
            ["data.seq_len=512", "tokenizer.n_sentinels=20"],
            "28 noise spans but the tokenizer has 20",
        ),
    ],
)
def test_impossible_span_settings_fail_in_one_line(
    train_main,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    tiny: list[str],
    args: list[str],
    message: str,
) -> None:
    overrides = [*T5, *tiny, *args, f"hydra.run.dir={tmp_path / 'run'}"]
    code = train_main(overrides)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert message in err


def test_span_corruption_trains_with_document_masking(tmp_path: Path, tiny: list[str]) -> None:
    overrides = [*T5, *tiny, "data.document_mask=true", "trainer.max_steps=4"]
    summary = train(compose_config("train", overrides), tmp_path)
    assert summary["steps"] == 4 and math.isfinite(summary["best_val_loss"])
