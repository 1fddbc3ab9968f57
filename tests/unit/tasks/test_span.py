"""SpanCorruption: loss over the targets, token accounting, validation sums, the window
geometry it gives the data module, config-time checks and the fp16 warning."""

from __future__ import annotations

import math

import pytest
import torch

from xformers_lab.core import TransformerConfig
from xformers_lab.data.config import DataConfig, TokenizerConfig
from xformers_lab.data.tokenizers import ByteTokenizer
from xformers_lab.errors import UserError
from xformers_lab.tasks import objective_class
from xformers_lab.tasks.span import FP16_WARNING, SpanCorruption, SpanOptions
from xformers_lab.training.module import TrainingModule
from xformers_lab.typed_config import build

TOKENIZER = ByteTokenizer(n_sentinels=100)
SPEC = SpanCorruption


def make_task() -> SpanCorruption:
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
        attn_scale=1.0,
    )
    return SpanCorruption(cfg, TOKENIZER, SpanOptions())


def batch(seq_len: int = 48, n_rows: int = 4) -> dict[str, torch.Tensor]:
    options = SpanOptions()
    rows = torch.randint(
        TOKENIZER.first_regular_id,
        TOKENIZER.vocab_size,
        (n_rows, SPEC.windows(seq_len, options).block_len),
        generator=torch.Generator().manual_seed(0),
    )
    return SPEC.collator(TOKENIZER, seq_len, options)(rows)


def test_the_spec_cuts_non_overlapping_windows_that_corrupt_into_seq_len() -> None:
    options = SpanOptions()
    assert objective_class("span") is SPEC
    assert SPEC.archs == {"encoder_decoder"} and SPEC.Options is SpanOptions
    windows = SPEC.windows(128, options)
    assert windows.block_len == windows.stride == 141
    assert SPEC.windows(512, options).block_len == 568  # T5's own figure for inputs of 512
    assert batch(128)["input_ids"].shape[1] == 128


def test_loss_is_the_cross_entropy_of_the_targets_and_starts_near_uniform() -> None:
    task, b = make_task(), batch()
    nats, targets, slots = task.summed_loss(b)
    loss = nats / targets
    assert slots == b["labels"].numel()
    logits = task.model(b["input_ids"], decoder_input_ids=b["decoder_input_ids"])
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), b["labels"].flatten())
    torch.testing.assert_close(loss, expected)
    assert loss.item() == pytest.approx(math.log(TOKENIZER.vocab_size), rel=0.05)
    loss.backward()
    assert all(p.grad is not None for p in task.model.parameters())


def test_batch_tokens_count_inputs_and_targets() -> None:
    b = batch(48, n_rows=4)
    assert make_task().batch_tokens(b) == 4 * 48 + b["labels"].numel()


def test_validation_sums_give_loss_ppl_and_bits_per_byte_of_the_span_text() -> None:
    task, b = make_task(), batch()
    totals = task.validation_sums(b)
    labels = b["labels"]
    text = labels >= TOKENIZER.first_regular_id  # bytes: not the sentinels, not EOS
    assert totals["tokens"].item() == labels.numel()
    assert totals["bytes"].item() == text.sum().item()
    metrics = task.metrics(totals)
    assert set(metrics) == {"loss", "ppl", "bpb"}
    assert metrics["ppl"].item() == pytest.approx(math.exp(metrics["loss"].item()), rel=1e-5)


def test_span_options_are_checked_at_config_time() -> None:
    with pytest.raises(UserError, match=r"task: noise_density must be in \(0, 1\)"):
        build(SpanOptions, {"noise_density": 1.5}, "task")
    with pytest.raises(UserError, match="mean_noise_span_length must be >= 1"):
        build(SpanOptions, {"mean_noise_span_length": 0.5}, "task")


def test_too_few_sentinels_for_the_window_fail_in_one_line() -> None:
    def data(seq_len: int) -> DataConfig:
        return DataConfig(source="pystdlib", seq_len=seq_len)

    SPEC.check(data(512), TokenizerConfig(kind="byte"), SpanOptions())
    with pytest.raises(UserError, match=r"^task=span: .* 114 noise spans .* 100 sentinels"):
        SPEC.check(data(2048), TokenizerConfig(kind="byte"), SpanOptions())
    with pytest.raises(UserError, match="0 sentinels"):
        SPEC.collator(ByteTokenizer(n_sentinels=0), 128, SpanOptions())


class _Trainer:
    def __init__(self, precision: str) -> None:
        self.precision = precision


@pytest.mark.parametrize(("precision", "warns"), [("16-mixed", True), ("bf16-mixed", False)])
def test_fp16_warns_once_and_suggests_bf16(
    precision: str, warns: bool, monkeypatch: pytest.MonkeyPatch, recwarn: pytest.WarningsRecorder
) -> None:
    module = TrainingModule(
        make_task(), optimizer=None, scheduler=None, weight_decay=0.0, total_steps=1
    )
    monkeypatch.setattr(TrainingModule, "trainer", property(lambda self: _Trainer(precision)))
    module.on_fit_start()
    messages = [str(w.message) for w in recwarn]
    assert messages == ([FP16_WARNING] if warns else [])
    assert "\n" not in FP16_WARNING and "bf16-mixed" in FP16_WARNING
