"""BERT end to end through the real config tree: masked-LM pretraining, fill-mask from the
checkpoint (Python and command line), and classification fine-tuned from it (`init_from`)."""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Any

import pytest
import torch

import xformers_lab
from xformers_lab.cli import compose_config
from xformers_lab.core.encoder import EncoderLM
from xformers_lab.inference.fill_mask import Candidate
from xformers_lab.training.run import train


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory: pytest.TempPathFactory, tiny: list[str]) -> dict[str, Any]:
    run_dir = tmp_path_factory.mktemp("mlm")
    return train(compose_config("train", ["model=bert", "task=mlm", *tiny]), run_dir)


def test_mlm_summary_reports_accuracy_and_its_baseline(mlm_run: dict[str, Any]) -> None:
    assert mlm_run["task"] == "mlm" and mlm_run["steps"] == 30
    assert mlm_run["tokens_seen"] == 30 * 8 * 32  # windows of 30 stream tokens + <cls>, <sep>
    for key in ("best_val_mlm_accuracy", "best_val_majority_accuracy"):
        assert 0.0 < mlm_run[key] < 1.0
    assert mlm_run["best_val_ppl"] == pytest.approx(
        2.718281828 ** mlm_run["best_val_loss"], rel=1e-4
    )


def test_checkpoint_loads_as_an_encoder_that_fills_masks(mlm_run: dict[str, Any]) -> None:
    lab = xformers_lab.load(mlm_run["checkpoint"])
    assert lab.task == "mlm" and isinstance(lab.model, EncoderLM)
    fills = lab.fill_mask("import <mask>s, <mask>ys", top_k=4)
    assert len(fills) == 2 and all(len(candidates) == 4 for candidates in fills)
    for candidates in fills:
        probs = [c.prob for c in candidates]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert all(isinstance(c, Candidate) and isinstance(c.token, str) for c in candidates)
        token, prob = candidates[0]  # plain (token, prob) pairs
        assert (token, prob) == (candidates[0].token, candidates[0].prob)


def test_fill_mask_command_line(mlm_run: dict[str, Any], run_cli, tmp_path: Path) -> None:
    args = [f"ckpt={mlm_run['checkpoint']}", "text=def <mask>(self):", "top_k=3"]
    result = run_cli("xformers_lab.fill_mask", args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "<mask> 1 of 1:" and len(lines) == 5
    assert 0 < float(lines[1].split()[0]) <= 1 and lines[-1].startswith("top-1 fill: 'def ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["text=no mask here"], "the text has no <mask>"),
        (["text=<mask>", "top_k=x"], "top_k must be an int"),
        (["text=<mask>", "top_k=0"], "top_k must be at least 1"),
        (["text=" + "a" * 2000 + "<mask>"], "more than the model's max_seq_len=512"),
        (["txt=<mask>"], "unknown argument 'txt=<mask>'"),
    ],
)
def test_fill_mask_mistakes_fail_in_one_line(
    mlm_run: dict[str, Any], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    from xformers_lab.fill_mask import main

    with pytest.raises(SystemExit) as exit_:
        main([f"ckpt={mlm_run['checkpoint']}", *args])
    assert exit_.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], errors


def test_fill_mask_refuses_a_decoder(tmp_path: Path) -> None:
    from xformers_lab.core import TransformerConfig, build_model
    from xformers_lab.data.tokenizers import ByteTokenizer
    from xformers_lab.errors import UserError
    from xformers_lab.inference.fill_mask import fill_mask

    tokenizer = ByteTokenizer(n_sentinels=0)
    gpt = build_model(TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_heads=2))
    with pytest.raises(UserError, match="fill-mask needs a masked LM"):
        fill_mask(gpt, tokenizer, "a <mask>")


@pytest.mark.slow
def test_fill_mask_restores_a_token_of_a_memorised_text(tmp_path: Path) -> None:
    """A toy whose every letter follows from its neighbours. RoPE escapes MLM's early unigram
    plateau on it within ~150 steps, where learned positions take thousands: the test is about
    fill-mask, so it takes the fast road."""
    corpus = tmp_path / "alphabet.txt"
    corpus.write_text("abcdefghijklmnopqrstuvwxyz\n" * 200)
    overrides = [
        "model=bert", "task=mlm", "tokenizer=char",
        "data=text", f"data.path={corpus}", "data.seq_len=32", "data.batch_size=16",
        "model.position=rope", "model.n_layers=2", "model.d_model=64", "model.n_heads=4",
        "trainer.max_steps=200", "trainer.val_check_interval=100", "trainer.limit_val_batches=4",
        "scheduler.warmup_steps=10", "optim.lr=2e-3",
    ]  # fmt: skip
    summary = train(compose_config("train", overrides), tmp_path / "run")
    assert summary["best_val_mlm_accuracy"] > 0.8 > summary["best_val_majority_accuracy"]
    lab = xformers_lab.load(summary["checkpoint"])
    fills = lab.fill_mask("abc<mask>efghij<mask>lmnop", top_k=3)
    assert [candidates[0].token for candidates in fills] == ["d", "k"]


def write_reviews(path: Path, n: int, seed: int) -> Path:
    """A separable toy sentiment set: each text mostly holds words of its class."""
    rng = random.Random(seed)
    words = {1: ["good", "great", "fine", "nice", "happy", "love"],
             0: ["bad", "awful", "poor", "sad", "worst", "hate"]}  # fmt: skip
    filler = ["the", "a", "it", "was", "film"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["review", "sentiment"])
        for i in range(n):
            label = i % 2
            text = [rng.choice(words[label])]
            text += [rng.choice(words[label] if rng.random() < 0.7 else filler) for _ in range(5)]
            writer.writerow([" ".join(text), "positive" if label else "negative"])
    return path


@pytest.mark.slow
def test_classifier_fine_tuned_from_the_mlm_checkpoint(
    mlm_run: dict[str, Any], tmp_path: Path
) -> None:
    train_csv = write_reviews(tmp_path / "train.csv", 400, seed=0)
    val_csv = write_reviews(tmp_path / "val.csv", 100, seed=1)
    overrides = [
        "model=bert", "task=classify", f"init_from={mlm_run['checkpoint']}",
        "tokenizer=char",  # ignored: the tokenizer comes from the checkpoint
        "data=text", f"data.path={train_csv}", f"data.val_path={val_csv}",
        "data.text_field=review", "data.label_field=sentiment",
        "data.seq_len=64", "data.batch_size=16",
        "trainer.max_steps=60", "trainer.val_check_interval=20", "trainer.log_every_n_steps=10",
        "scheduler.warmup_steps=10", "optim.lr=2e-3",
    ]  # fmt: skip
    summary = train(compose_config("train", overrides), tmp_path / "run")
    assert summary["task"] == "classify"
    assert summary["best_val_accuracy"] >= 0.95 and summary["best_val_f1"] >= 0.95

    pretrained = torch.load(mlm_run["checkpoint"], map_location="cpu", weights_only=True)
    tuned = torch.load(summary["checkpoint"], map_location="cpu", weights_only=True)
    assert tuned["xformers_lab"]["tokenizer"] == pretrained["xformers_lab"]["tokenizer"]
    assert tuned["xformers_lab"]["model_config"] == pretrained["xformers_lab"]["model_config"]
    assert tuned["xformers_lab"]["head"] == {
        "num_labels": 2,
        "pooling": "cls",
        "classifier_dropout": 0.1,
        "label_names": ["negative", "positive"],
    }
    frozen = "model.head.dense.weight"  # unused by the classifier: exactly as pretrained
    assert torch.equal(tuned["state_dict"][frozen], pretrained["state_dict"][frozen])
    embedding = "model.embed.weight"  # fine-tuned
    assert not torch.equal(tuned["state_dict"][embedding], pretrained["state_dict"][embedding])

    lab = xformers_lab.load(summary["checkpoint"])  # the fine-tuned classifier, from Python
    texts = ["great good happy film", "awful bad worst film"]
    assert [p.label for p in lab.classify(texts)] == ["positive", "negative"]
    assert all(p.probability > 0.5 for p in lab.classify(texts))
