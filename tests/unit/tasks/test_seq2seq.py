"""Seq2seq: sources and targets framed with </s>, labels -100 at padding, truncation counted,
the fused loss equal to the dense one, and validation generating as `generate` does."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset

from xformers_lab.core import TransformerConfig
from xformers_lab.data.collators import IGNORE_INDEX
from xformers_lab.data.tokenizers import CharTokenizer
from xformers_lab.errors import UserError
from xformers_lab.inference.generation import GenerationConfig, generate_text
from xformers_lab.tasks.seq2seq import Seq2Seq, Seq2SeqCollator, Seq2SeqOptions
from xformers_lab.typed_config import build

TOKENIZER = CharTokenizer("abcdefgh: ", n_sentinels=3)
EOS, PAD = TOKENIZER.eos_id, TOKENIZER.pad_id


def make_task(**options: object) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = TransformerConfig(
        vocab_size=TOKENIZER.vocab_size,
        arch="encoder_decoder",
        d_model=32,
        n_heads=4,
        n_layers=2,
        position="t5",
        norm="rms",
        bias=False,
        ffn="geglu",
        tie_embeddings=False,
    )
    return Seq2Seq(cfg, TOKENIZER, Seq2SeqOptions(**options)).eval()  # type: ignore[arg-type]


def encoded(task: Seq2Seq, pairs: list[tuple[str, str]], seq_len: int = 16) -> Dataset:
    """The examples as the data module gives them to the collator: encoded, then prepared."""
    raw = Dataset.from_dict({"source": [s for s, _ in pairs], "target": [t for _, t in pairs]})
    encoder = Seq2Seq.encoder(TOKENIZER, task.options)
    examples = raw.map(encoder, batched=True, remove_columns=list(encoder.consumes))
    prepared, _ = collator(task, seq_len).prepare(examples, "train")
    return prepared


def collator(task: Seq2Seq, seq_len: int = 16) -> Seq2SeqCollator:
    return Seq2Seq.collator(TOKENIZER, seq_len, task.options)


def batch_of(task: Seq2Seq, pairs: list[tuple[str, str]], seq_len: int = 16) -> dict:
    return collator(task, seq_len)(list(encoded(task, pairs, seq_len)))


def test_a_batch_frames_sources_and_targets_and_pads_labels_with_ignore() -> None:
    task = make_task(source_prefix="r: ")
    batch = batch_of(task, [("abc", "cba"), ("abcdef", "fe")])
    r, c, a = (TOKENIZER.encode(ch)[0] for ch in "rca")
    assert batch["input_ids"][0].tolist()[:7] == [r, *TOKENIZER.encode(": abc"), EOS]
    assert batch["attention_mask"].tolist() == [[1] * 7 + [0] * 3, [1] * 10]
    assert batch["labels"].tolist() == [
        [c, *TOKENIZER.encode("ba"), EOS],
        [*TOKENIZER.encode("fe"), EOS, IGNORE_INDEX],
    ]
    assert batch["decoder_input_ids"].tolist() == [
        [PAD, c, *TOKENIZER.encode("ba")],
        [PAD, *TOKENIZER.encode("fe"), PAD],
    ]
    assert batch["sources"] == ["abc", "abcdef"] and batch["references"] == ["cba", "fe"]
    assert a not in batch["labels"][1].tolist()


def test_long_sources_and_targets_are_cut_keeping_eos_and_counted_once() -> None:
    task = make_task(max_target_len=4)
    raw = Dataset.from_dict({"source": ["abcdefgh", "ab"], "target": ["abcdefgh", "a"]})
    encoder = Seq2Seq.encoder(TOKENIZER, task.options)
    examples = raw.map(encoder, batched=True, remove_columns=list(encoder.consumes))
    prepared, notes = collator(task, seq_len=5).prepare(examples, "train")
    assert prepared["input_ids"][0] == [*TOKENIZER.encode("abcd"), EOS]
    assert prepared["labels"][0] == [*TOKENIZER.encode("abc"), EOS]
    assert prepared["input_ids"][1] == [*TOKENIZER.encode("ab"), EOS]
    assert notes == [
        "train: 1 of 2 sources cut to data.seq_len=5 tokens",
        "train: 1 of 2 targets cut to task.max_target_len=4 tokens",
    ]


def test_the_fused_loss_equals_cross_entropy_of_the_logits() -> None:
    task = make_task()
    batch = batch_of(task, [("abc", "cba"), ("abcdefg", "gfedcba"), ("h", "h")])
    nats, targets, slots = task.summed_loss(batch)
    logits = task.model(
        batch["input_ids"],
        attention_mask=batch["attention_mask"],
        decoder_input_ids=batch["decoder_input_ids"],
    )
    expected = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), reduction="sum")
    torch.testing.assert_close(nats, expected, rtol=1e-5, atol=1e-4)
    assert targets.item() == 4 + 8 + 2 and slots == 3 * 8


def test_an_example_has_the_same_loss_alone_or_padded_in_a_batch() -> None:
    task = make_task()
    alone = task.summed_loss(batch_of(task, [("abc", "cba")])).nats
    batch = batch_of(task, [("abc", "cba"), ("abcdefgh", "hgfedcbaabc")])
    together = (
        task.summed_loss(batch).nats
        - task.summed_loss(batch_of(task, [("abcdefgh", "hgfedcbaabc")])).nats
    )
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_validation_generates_what_generate_writes_for_the_same_source() -> None:
    """The prefix and framing of validation prompts and of `generate` are the same."""
    task = make_task(source_prefix="r: ", eval_max_new_tokens=6)
    pairs = [("abc", "cba"), ("hgfe", "efgh")]
    records = task.predict(batch_of(task, pairs), limit=1)
    assert [r["source"] for r in records] == ["abc"] and records[0]["reference"] == "cba"
    ids = [task.prompt_ids("abc")]
    generated = generate_text(
        task.model,
        TOKENIZER,
        ["abc"],
        GenerationConfig(max_new_tokens=6),
        ids,
        task.completion_text,
    )
    assert records[0]["prediction"] == generated[0][0]
    assert ids[0] == [*TOKENIZER.encode("r: abc"), EOS]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"monitor": "accuracy"}, "unknown monitor 'accuracy'"),
        ({"eval_examples": 0}, "monitor=exact_match is measured on generated examples"),
        ({"max_target_len": 1}, "max_target_len must leave room for </s>"),
        ({"eval_num_beams": 0}, "must be positive"),
    ],
)
def test_bad_options_fail_in_one_line(values: dict[str, object], message: str) -> None:
    with pytest.raises(UserError, match=message):
        build(Seq2SeqOptions, values, "task")


def test_monitor_picks_the_tracked_metric_and_its_direction() -> None:
    assert make_task().best.metric == "exact_match" and make_task().best.mode == "max"
    loss = make_task(monitor="loss", eval_examples=0)
    assert (loss.best.metric, loss.best.mode, loss.prediction_budget()) == ("loss", "min", 0)
    assert make_task(monitor="chrf").best.mode == "max"
