"""`xformers_lab.load()` rebuilds any checkpoint with its objective's head, without Lightning, and
reads files written by the first release (format 1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import xformers_lab
from xformers_lab import checkpoints
from xformers_lab.core import TransformerConfig
from xformers_lab.data.tokenizers import ByteTokenizer
from xformers_lab.errors import UserError
from xformers_lab.tasks.classify import Classification, ClassifyOptions, Prediction

FORMAT_1 = Path(__file__).parents[2] / "fixtures" / "format1_classify.ckpt"
"""A classifier fine-tuned for 2 steps by the release before format 2 (commit a90401b): a tiny
BERT (1 layer, d_model 16, char tokenizer) on "the day was <good|bad word> ..." reviews, labels
"negative"/"positive"."""
FORMAT_1_PROBS = [[0.494851678609848, 0.5051483511924744], [0.4948422908782959, 0.5051577091217041]]
"""What that release's ClassifyTask gave for TEXTS (softmax of its logits)."""
TEXTS = ["the day was good and the food was good", "the day was bad and the food was bad"]


def test_a_format_1_classifier_loads_and_classifies_as_its_release_did() -> None:
    lab = xformers_lab.load(FORMAT_1)
    assert lab.task == "classify" and lab.verbs == ("classify",)
    predictions = lab.classify(TEXTS)
    probs = [[p.probabilities[0], p.probabilities[1]] for p in predictions]
    torch.testing.assert_close(torch.tensor(probs), torch.tensor(FORMAT_1_PROBS))
    assert predictions[0].label == 1  # format 1 kept no label names: ids
    payload = checkpoints.read(FORMAT_1).payload
    assert payload.format == checkpoints.FORMAT and payload.head["num_labels"] == 2


def test_load_imports_no_lightning() -> None:
    code = (
        "import sys, xformers_lab; "
        f"lab = xformers_lab.load({str(FORMAT_1)!r}); lab.classify('a fine day'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', "
        "'pytorch_lightning')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def classifier_checkpoint(path: Path, label_names: list[str] | None) -> Classification:
    tokenizer = ByteTokenizer(n_sentinels=0)
    config = TransformerConfig(vocab_size=tokenizer.vocab_size, arch="encoder", d_model=16)
    torch.manual_seed(0)
    objective = Classification(config, tokenizer, ClassifyOptions(num_labels=3, pooling="mean"))
    objective.label_names = label_names
    payload = checkpoints.Payload(
        task="classify",
        model_config=config,
        tokenizer=tokenizer.state_dict(),
        head=objective.head_config(),
    )
    checkpoints.write(path, objective.state_dict(), payload)
    return objective.eval()


def test_a_classifier_answers_with_its_label_names_and_probabilities(tmp_path: Path) -> None:
    objective = classifier_checkpoint(tmp_path / "c.ckpt", ["neg", "neutral", "pos"])
    lab = xformers_lab.load(tmp_path / "c.ckpt")
    assert lab.objective.options == ClassifyOptions(num_labels=3, pooling="mean")
    one = lab.classify("a text")
    batch = lab.classify(["a text", "another, longer text"])
    assert isinstance(one, Prediction) and batch[0] == one
    with torch.no_grad():
        rows = objective.collator(objective.tokenizer, 64, objective.options)(
            [{"input_ids": objective.tokenizer.encode("a text"), "label": 0}]
        )
        expected = objective(rows["input_ids"], rows["attention_mask"]).softmax(-1)[0]
    assert list(one.probabilities) == ["neg", "neutral", "pos"]
    torch.testing.assert_close(torch.tensor(list(one.probabilities.values())), expected)
    assert one.label == ["neg", "neutral", "pos"][int(expected.argmax())]
    assert one.probability == pytest.approx(float(expected.max()))


def test_a_verb_of_another_objective_is_refused_in_one_line(tmp_path: Path) -> None:
    classifier_checkpoint(tmp_path / "c.ckpt", None)
    lab = xformers_lab.load(tmp_path / "c.ckpt")
    with pytest.raises(AttributeError, match="task=classify checkpoint offers generate, fill_mask"):
        lab.answer("question?")


def test_a_checkpoint_of_a_newer_format_or_a_foreign_file_is_one_line(tmp_path: Path) -> None:
    path = checkpoints.write(
        tmp_path / "new.ckpt",
        {},
        checkpoints.Payload(
            task="clm",
            model_config=TransformerConfig(vocab_size=8),
            tokenizer={},
            format=checkpoints.FORMAT + 1,
        ),
    )
    with pytest.raises(UserError, match=r"has format 3; .* \(a newer release wrote it"):
        xformers_lab.load(path)
    torch.save({"weights": 1}, tmp_path / "foreign.ckpt")
    with pytest.raises(UserError, match="is not an xformers_lab checkpoint"):
        xformers_lab.load(tmp_path / "foreign.ckpt")
