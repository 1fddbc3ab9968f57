"""T5 span corruption: T5's length arithmetic, the noise statistics, exact reconstruction, fixed
shapes, teacher forcing, and one-line errors for impossible settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xformers_lab.data.span_corruption import (
    SpanCorruptionCollator,
    compute_span_lengths,
    random_spans_noise_mask,
)
from xformers_lab.data.tokenizers.byte import ByteTokenizer
from xformers_lab.data.windows import WindowBatch

TOKENIZER = ByteTokenizer.train([], n_sentinels=100)
SENTINELS = {TOKENIZER.sentinel_id(i) for i in range(TOKENIZER.n_sentinels)}


def t5_random_spans_helper(
    inputs_length: int, noise_density: float, mean_noise_span_length: float
) -> tuple[int, int]:
    """T5's `random_spans_helper` (t5.data.preprocessors), written out: (tokens, targets)."""

    def lengths(tokens_length: int) -> tuple[int, int]:
        num_noise_tokens = round(tokens_length * noise_density)
        num_nonnoise_tokens = tokens_length - num_noise_tokens
        num_noise_spans = round(num_noise_tokens / mean_noise_span_length)
        return num_nonnoise_tokens + num_noise_spans + 1, num_noise_tokens + num_noise_spans + 1

    tokens_length = inputs_length - 1
    while lengths(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    return tokens_length, lengths(tokens_length)[1]


def stream_rows(n_rows: int, length: int, seed: int = 0) -> torch.Tensor:
    """Rows of regular byte ids with an EOS here and there, as packed windows look."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randint(TOKENIZER.first_regular_id, TOKENIZER.vocab_size, (n_rows, length))
    rows[torch.rand(n_rows, length, generator=generator) < 0.02] = TOKENIZER.eos_id
    return rows


def reconstruct(inputs: list[int], labels: list[int]) -> list[int]:
    """The original window from a corrupted input and its target."""
    assert inputs[-1] == TOKENIZER.eos_id and labels[-1] == TOKENIZER.eos_id
    spans: dict[int, list[int]] = {}
    current: list[int] = []
    for token in labels[:-1]:
        if token in SENTINELS:
            current = spans.setdefault(token, [])
        else:
            current.append(token)
    out: list[int] = []
    for token in inputs[:-1]:
        out += spans.pop(token) if token in SENTINELS else [token]
    assert not spans, "every target span fills a sentinel of the input"
    return out


def test_lengths_are_those_of_hugging_faces_t5_example() -> None:
    lengths = compute_span_lengths(512, 0.15, 3.0)
    assert (lengths.tokens, lengths.inputs, lengths.targets) == (568, 512, 114)


@pytest.mark.parametrize("seq_len", [16, 32, 64, 100, 128, 255, 512, 1024])
@pytest.mark.parametrize(("density", "mean"), [(0.15, 3.0), (0.3, 5.0), (0.05, 1.0), (0.5, 3.0)])
def test_lengths_follow_t5s_random_spans_helper(seq_len: int, density: float, mean: float) -> None:
    lengths = compute_span_lengths(seq_len, density, mean)
    tokens, targets = t5_random_spans_helper(seq_len, density, mean)
    # T5 nudges density 0.5 one token shorter so targets == inputs; that would leave the
    # inputs a token short of seq_len, so we keep its un-nudged lengths
    assert (lengths.tokens, lengths.targets) == (tokens, targets)
    assert lengths.inputs == seq_len


@pytest.mark.parametrize("seq_len", [32, 128, 200])
def test_every_example_has_the_computed_fixed_lengths(seq_len: int) -> None:
    collator = SpanCorruptionCollator(TOKENIZER, seq_len)
    lengths = collator.lengths
    for seed in range(5):
        batch = collator(stream_rows(8, lengths.tokens, seed))
        assert batch["input_ids"].shape == (8, seq_len)
        assert batch["labels"].shape == (8, lengths.targets)
        assert batch["decoder_input_ids"].shape == (8, lengths.targets)
        assert all(t.dtype == torch.long for t in batch.values())


def test_inputs_and_targets_reconstruct_the_original_exactly() -> None:
    collator = SpanCorruptionCollator(TOKENIZER, 128)
    rows = stream_rows(64, collator.lengths.tokens)
    batch = collator(rows)
    for row, inputs, labels in zip(rows, batch["input_ids"], batch["labels"], strict=True):
        assert reconstruct(inputs.tolist(), labels.tolist()) == row.tolist()


def test_sentinels_are_unique_in_order_and_lead_the_target() -> None:
    collator = SpanCorruptionCollator(TOKENIZER, 128)
    batch = collator(stream_rows(16, collator.lengths.tokens))
    expected = [TOKENIZER.sentinel_id(i) for i in range(collator.lengths.noise_spans)]
    for inputs, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist(), strict=True):
        assert [t for t in inputs if t in SENTINELS] == expected
        assert [t for t in labels if t in SENTINELS] == expected
        assert labels[0] == expected[0] and inputs[-1] == labels[-1] == TOKENIZER.eos_id


def test_decoder_inputs_are_the_targets_shifted_right_after_pad() -> None:
    collator = SpanCorruptionCollator(TOKENIZER, 64)
    batch = collator(stream_rows(4, collator.lengths.tokens))
    assert (batch["decoder_input_ids"][:, 0] == TOKENIZER.pad_id).all()
    assert torch.equal(batch["decoder_input_ids"][:, 1:], batch["labels"][:, :-1])


def noise_runs(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of True in one row."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))


def test_noise_fraction_and_mean_span_length_match_the_settings() -> None:
    rng = np.random.default_rng(0)
    noise, total, runs = 0, 0, []
    for length in range(60, 600, 7):  # many window lengths, so rounding averages out
        mask = random_spans_noise_mask(32, length, 0.15, 3.0, rng)
        noise, total = noise + mask.sum(), total + mask.size
        runs += [r for row in mask for r in noise_runs(row)]
    assert noise / total == pytest.approx(0.15, abs=0.01)
    assert np.mean(runs) == pytest.approx(3.0, abs=0.3)
    assert min(runs) >= 1 and np.std(runs) > 1  # lengths vary, they are not all three


@pytest.mark.parametrize(("density", "mean"), [(0.15, 3.0), (0.3, 8.0), (0.1, 1.0)])
def test_noise_masks_alternate_from_non_noise_to_a_final_noise_span(
    density: float, mean: float
) -> None:
    mask = random_spans_noise_mask(64, 141, density, mean, np.random.default_rng(1))
    assert not mask[:, 0].any() and mask[:, -1].all()
    expected_noise = round(141 * density)
    assert (mask.sum(axis=1) == expected_noise).all()
    assert {len(noise_runs(row)) for row in mask} == {max(round(expected_noise / mean), 1)}
    assert len({row.tobytes() for row in mask}) > 50  # rows are drawn independently


def test_the_same_batch_is_corrupted_the_same_way_and_seeds_differ() -> None:
    rows = stream_rows(8, SpanCorruptionCollator(TOKENIZER, 64).lengths.tokens)
    first, again = (
        SpanCorruptionCollator(TOKENIZER, 64)(rows),
        SpanCorruptionCollator(TOKENIZER, 64)(rows),
    )
    other_seed = SpanCorruptionCollator(TOKENIZER, 64, seed=1)(rows)
    assert torch.equal(first["input_ids"], again["input_ids"])
    assert not torch.equal(first["input_ids"], other_seed["input_ids"])


def test_a_row_is_corrupted_alike_in_any_batch_and_repeats_differ_by_position() -> None:
    """Per-row draws: batch-mates do not matter (DDP ranks and accumulated micro-batches see
    the corruption of the one big batch), while the same text at two stream positions differs."""
    collator = SpanCorruptionCollator(TOKENIZER, 64)
    rows = stream_rows(8, collator.lengths.tokens)
    starts = torch.arange(8) * 100
    whole = collator(WindowBatch(rows, starts))
    halves = [collator(WindowBatch(rows[i : i + 4], starts[i : i + 4])) for i in (0, 4)]
    for key in whole:
        assert torch.equal(whole[key], torch.cat([h[key] for h in halves]))
    repeated = collator(WindowBatch(rows[:1].expand(6, -1), torch.arange(6) * 1000))
    assert len({tuple(r.tolist()) for r in repeated["input_ids"]}) == 6


def test_more_spans_than_sentinels_fails_in_one_line() -> None:
    few = ByteTokenizer.train([], n_sentinels=5)
    with pytest.raises(ValueError, match=r"makes 7 noise spans but the tokenizer has 5 sentinels"):
        SpanCorruptionCollator(few, 128)
    assert SpanCorruptionCollator(few, 128, mean_noise_span_length=5.0).lengths.noise_spans == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"noise_density": 0.0}, "noise_density must be in"),
        ({"noise_density": 1.0}, "noise_density must be in"),
        ({"mean_noise_span_length": 0.5}, "mean_noise_span_length must be >= 1"),
        ({"noise_density": 0.9, "mean_noise_span_length": 1.0}, "non-noise tokens for"),
    ],
)
def test_impossible_settings_fail_clearly(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_span_lengths(64, **kwargs)


def test_rows_of_the_wrong_length_are_refused() -> None:
    collator = SpanCorruptionCollator(TOKENIZER, 32)
    with pytest.raises(ValueError, match=r"expects rows of 34 tokens, got 33"):
        collator(stream_rows(2, 33))


def test_a_mask_that_cannot_alternate_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot hold 9 noise spans"):
        random_spans_noise_mask(1, 10, 0.9, 1.0, np.random.default_rng(0))


def expected_documents(
    inputs: list[int], labels: list[int], documents: list[int]
) -> tuple[list[int], list[int]]:
    """Walk the corrupted example along the raw row: (encoder, decoder) documents, a sentinel
    taking its span's first token's and a decoder position its input token's."""
    spans: dict[int, int] = {}  # sentinel -> span length
    current = None
    for token in labels[:-1]:
        if token in SENTINELS:
            current, spans[token] = token, 0
        else:
            spans[current] += 1  # type: ignore[index]
    encoder, starts, raw = [], {}, 0
    for token in inputs[:-1]:
        encoder.append(documents[raw])
        starts[token] = raw
        raw += spans[token] if token in SENTINELS else 1
    targets, raw = [], 0
    for token in labels[:-1]:
        if token in SENTINELS:
            raw = starts[token]
            targets.append(documents[raw])
        else:
            targets.append(documents[raw])
            raw += 1
    targets.append(documents[-1])
    return [*encoder, documents[-1]], targets[:1] + targets[:-1]


def test_document_ids_follow_the_raw_tokens_through_the_spans() -> None:
    rows = stream_rows(16, 110, seed=3)
    rows[:, ::17] = TOKENIZER.eos_id  # several documents in every row
    collate = SpanCorruptionCollator(TOKENIZER, 100, seed=1).with_document_ids(TOKENIZER.eos_id)
    out = collate(rows)
    assert out["document_ids"].shape == out["input_ids"].shape
    assert out["decoder_document_ids"].shape == out["decoder_input_ids"].shape
    documents = (rows == TOKENIZER.eos_id).long().cumsum(1) - (rows == TOKENIZER.eos_id).long()
    for i in range(len(rows)):
        encoder, decoder = expected_documents(
            out["input_ids"][i].tolist(), out["labels"][i].tolist(), documents[i].tolist()
        )
        assert out["document_ids"][i].tolist() == encoder
        assert out["decoder_document_ids"][i].tolist() == decoder
    plain = SpanCorruptionCollator(TOKENIZER, 100, seed=1)(rows)
    assert "document_ids" not in plain  # only when asked for
    for key in plain:
        assert torch.equal(plain[key], out[key])  # the same corruption either way


def test_a_document_of_a_packed_row_leaves_the_others_outputs_unchanged() -> None:
    from xformers_lab.core import TransformerConfig, build_model

    rows = stream_rows(2, 110, seed=4)
    rows[:, [30, 75]] = TOKENIZER.eos_id  # three documents per row
    batch = SpanCorruptionCollator(TOKENIZER, 100, seed=2).with_document_ids(TOKENIZER.eos_id)(rows)
    torch.manual_seed(0)
    config = TransformerConfig(
        vocab_size=TOKENIZER.vocab_size, arch="encoder_decoder", position="t5", norm="rms",
        ffn="geglu", bias=False, d_model=32, n_heads=4, n_layers=2, max_seq_len=128, dropout=0.0,
    )  # fmt: skip
    model = build_model(config).eval()

    def logits(inputs: torch.Tensor, decoder_inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(
                inputs,
                decoder_input_ids=decoder_inputs,
                document_ids=batch["document_ids"],
                decoder_document_ids=batch["decoder_document_ids"],
            )

    def rewrite_document(ids: torch.Tensor, documents: torch.Tensor) -> torch.Tensor:
        regular = (ids >= TOKENIZER.first_regular_id) & (documents == 1)
        return torch.where(regular, TOKENIZER.first_regular_id + (ids * 7 + 3) % 200, ids)

    before = logits(batch["input_ids"], batch["decoder_input_ids"])
    after = logits(
        rewrite_document(batch["input_ids"], batch["document_ids"]),
        rewrite_document(batch["decoder_input_ids"], batch["decoder_document_ids"]),
    )
    others = batch["decoder_document_ids"] != 1
    torch.testing.assert_close(after[others], before[others], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(after[~others], before[~others], atol=1e-3)  # document 1 did change
