"""Classification: pooling ignores padding, metrics count what they say, the classifier trains
and the unused MLM head does not."""

from __future__ import annotations

import pytest
import torch

from xformers_lab.core import TransformerConfig
from xformers_lab.data.collators import ClassificationCollator
from xformers_lab.data.tokenizers import ByteTokenizer
from xformers_lab.errors import UserError
from xformers_lab.tasks.classify import Classification, ClassifyOptions
from xformers_lab.training.optim import param_groups
from xformers_lab.typed_config import build

TOKENIZER = ByteTokenizer(n_sentinels=0)


def make_task(**options: object) -> Classification:
    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=TOKENIZER.vocab_size, arch="encoder", d_model=32, n_heads=4, n_layers=2
    )
    return Classification(cfg, TOKENIZER, ClassifyOptions(**options)).eval()  # type: ignore[arg-type]


def examples(*texts: str, labels: list[int] | None = None) -> dict[str, torch.Tensor]:
    labels = labels or [0] * len(texts)
    rows = [
        {"input_ids": TOKENIZER.encode(t), "label": y} for t, y in zip(texts, labels, strict=True)
    ]
    return ClassificationCollator(TOKENIZER, seq_len=64)(rows)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_an_example_scores_the_same_alone_or_padded_in_a_batch(pooling: str) -> None:
    task = make_task(pooling=pooling)
    alone = examples("short one")
    batch = examples("short one", "a much longer example that forces padding")
    with torch.no_grad():
        torch.testing.assert_close(
            task(batch["input_ids"], batch["attention_mask"])[0],
            task(alone["input_ids"], alone["attention_mask"])[0],
            atol=1e-5,
            rtol=1e-5,
        )


def test_validation_accuracy_and_f1_of_class_one() -> None:
    task = make_task()
    batch = examples("a", "b", "c", "d", "e", labels=[1, 1, 0, 0, 1])
    predicted = torch.tensor([1, 0, 1, 0, 1])  # tp 2, fp 1, fn 1, correct 3
    task.forward = lambda ids, mask: torch.nn.functional.one_hot(predicted, 2).float() * 5  # type: ignore[method-assign]
    metrics = task.metrics(task.validation_sums(batch))
    assert metrics["accuracy"].item() == pytest.approx(3 / 5)
    assert metrics["f1"].item() == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert metrics["loss"].item() > 0


def test_more_than_two_classes_report_no_f1() -> None:
    task = make_task(num_labels=3)
    sums = task.validation_sums(examples("a", "b", "c", labels=[0, 1, 2]))
    assert set(task.metrics(sums)) == {"loss", "accuracy"}


def test_classifier_trains_and_the_unused_mlm_head_is_frozen() -> None:
    task = make_task()
    trained = {id(p) for group in param_groups(task, 0.1) for p in group["params"]}
    assert all(id(p) in trained for p in task.classifier.parameters())
    assert id(task.model.embed.weight) in trained  # the tied decoder is the embedding
    head = task.model.head
    frozen = [head.dense.weight, head.dense.bias, head.norm.weight, head.bias]
    assert all(not p.requires_grad and id(p) not in trained for p in frozen)


@pytest.mark.parametrize(
    ("values", "message"),
    [({"num_labels": 1}, "num_labels must be at least 2"), ({"pooling": "max"}, "unknown pooling")],
)
def test_bad_options_fail_in_one_line(values: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        build(ClassifyOptions, values, "task")
