"""MaskedLM: the head on gathered positions gives the loss (and gradients) of a full head
with every other position ignored; validation counts what it says it counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xformers_lab.core import TransformerConfig
from xformers_lab.data.collators import IGNORE_INDEX
from xformers_lab.data.tokenizers import ByteTokenizer
from xformers_lab.errors import UserError
from xformers_lab.tasks.mlm import MaskedLM, MLMOptions
from xformers_lab.typed_config import build

TOKENIZER = ByteTokenizer(n_sentinels=0)


def make_task() -> MaskedLM:
    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=TOKENIZER.vocab_size, arch="encoder", d_model=32, n_heads=4, n_layers=2
    )
    return MaskedLM(cfg, TOKENIZER, MLMOptions())


def mean_loss(task: MaskedLM, b: dict[str, torch.Tensor]) -> torch.Tensor:
    nats, targets, _ = task.summed_loss(b)
    return nats / targets.clamp(min=1)


def batch(n_rows: int = 6, seq_len: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    first = TOKENIZER.first_regular_id
    rows = torch.randint(first, TOKENIZER.vocab_size, (n_rows, seq_len - 2), generator=g)
    rows[:, 10] = TOKENIZER.eos_id  # a document boundary inside the window
    return MaskedLM.collator(TOKENIZER, seq_len, MLMOptions(mask_prob=0.25))(rows)


def full_head_loss(task: MaskedLM, b: dict[str, torch.Tensor]) -> torch.Tensor:
    """The dense reference: logits everywhere, targets only at the selected positions."""
    logits = task.model(b["input_ids"])  # (B, T, V)
    targets = torch.full(b["input_ids"].shape, IGNORE_INDEX)
    used = b["labels"] != IGNORE_INDEX
    rows = torch.arange(len(targets)).unsqueeze(1).expand_as(used)
    targets[rows[used], b["mask_positions"][used]] = b["labels"][used]
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)


def test_sparse_head_loss_and_gradients_equal_the_full_head() -> None:
    task, b = make_task(), batch()
    sparse = mean_loss(task, b)
    sparse.backward()
    sparse_grads = [p.grad.clone() for p in task.model.parameters()]
    task.model.zero_grad()
    full = full_head_loss(task, b)
    full.backward()
    torch.testing.assert_close(sparse, full)
    for got, expected in zip(sparse_grads, (p.grad for p in task.model.parameters()), strict=True):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-4)


def test_a_batch_without_targets_has_zero_loss_not_nan() -> None:
    task, b = make_task(), batch()
    b["labels"].fill_(IGNORE_INDEX)
    assert mean_loss(task, b).item() == 0.0


def test_validation_counts_accuracy_and_the_majority_baseline() -> None:
    task = make_task()
    sums = [task.validation_sums(batch(seed=seed)) for seed in range(3)]
    totals = {key: sum(s[key] for s in sums) for key in sums[0]}
    metrics = task.metrics(totals)
    labels = torch.cat([batch(seed=s)["labels"].flatten() for s in range(3)])
    labels = labels[labels != IGNORE_INDEX]
    assert totals["tokens"].item() == len(labels)
    majority = torch.bincount(labels).max().item() / len(labels)
    assert metrics["majority_accuracy"].item() == pytest.approx(majority)
    assert 0.0 <= metrics["mlm_accuracy"].item() <= 1.0
    assert metrics["ppl"].item() == pytest.approx(metrics["loss"].exp().item(), rel=1e-5)
    with torch.no_grad():
        logits = task.masked_logits(batch(seed=0))
    correct = (logits.argmax(-1) == batch(seed=0)["labels"]).sum().item()
    assert task.validation_sums(batch(seed=0))["correct"].item() == correct


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mask_prob": 0.0}, "mask_prob must be in"),
        ({"mask_token": 0.7}, "must sum to 1"),
        ({"random_token": -0.1, "keep_token": 0.3}, "random_token must be in"),
    ],
)
def test_bad_options_fail_in_one_line(values: dict[str, float], message: str) -> None:
    with pytest.raises(UserError, match=message):
        build(MLMOptions, values, "task")
