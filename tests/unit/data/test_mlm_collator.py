"""MaskedLMCollator: BERT's 15% selection and 80/10/10 corruption, measured over many rows;
specials and padding are never touched; shapes are fixed; masks are reproducible."""

from __future__ import annotations

import math

import pytest
import torch

from xformers_lab.data.collators import IGNORE_INDEX, MaskedLMCollator
from xformers_lab.data.config import TokenizerConfig
from xformers_lab.data.special_tokens import FIXED_SPECIALS
from xformers_lab.data.tokenizers import ByteTokenizer, build_tokenizer
from xformers_lab.data.windows import WindowBatch

BYTES = ByteTokenizer(n_sentinels=100)
TOKENIZER_KINDS = ["byte", "char", "spm_unigram", "spm_bpe"]  # every kind trained on text
FIRST = BYTES.first_regular_id


def random_rows(
    n_rows: int, row_len: int, special_share: float = 0.1, seed: int = 0
) -> torch.Tensor:
    """Regular byte tokens with a share of specials (pad, eos, sentinels, ...) sprinkled in."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(FIRST, BYTES.vocab_size, (n_rows, row_len), generator=g)
    specials = torch.randint(0, FIRST, (n_rows, row_len), generator=g)
    return torch.where(torch.rand(n_rows, row_len, generator=g) < special_share, specials, rows)


def selected(out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row index, position, label) of every used prediction slot."""
    used = out["labels"] != IGNORE_INDEX
    rows = torch.arange(used.shape[0]).unsqueeze(1).expand_as(used)
    return rows[used], out["mask_positions"][used], out["labels"][used]


def test_rates_hold_over_many_rows() -> None:
    rows = random_rows(4000, 126)
    out = MaskedLMCollator(BYTES, seed=3)(rows)
    row, pos, label = selected(out)
    n_candidates = (rows >= FIRST).sum().item()
    assert len(label) / n_candidates == pytest.approx(0.15, abs=0.002)
    now = out["input_ids"][row, pos]
    masked = (now == BYTES.mask_id).float().mean().item()
    replaced = ((now != BYTES.mask_id) & (now != label)).float().mean().item()
    kept = (now == label).float().mean().item()
    n_regular = BYTES.vocab_size - FIRST  # a random token is the original one 1/256 of the time
    assert masked == pytest.approx(0.8, abs=0.01)
    assert replaced == pytest.approx(0.1 * (1 - 1 / n_regular), abs=0.006)
    assert kept == pytest.approx(0.1 + 0.1 / n_regular, abs=0.006)
    assert (now[now != BYTES.mask_id] >= FIRST).all(), "random replacements are regular tokens"


@pytest.mark.parametrize(
    ("mask_prob", "mask_token", "random_token"), [(0.3, 0.5, 0.5), (0.05, 1.0, 0.0)]
)
def test_fractions_are_configurable(
    mask_prob: float, mask_token: float, random_token: float
) -> None:
    rows = random_rows(3000, 62, special_share=0.0)
    collate = MaskedLMCollator(
        BYTES, mask_prob=mask_prob, mask_token=mask_token, random_token=random_token
    )
    out = collate(rows)
    row, pos, label = selected(out)
    assert len(label) / rows.numel() == pytest.approx(mask_prob, rel=0.02)
    now = out["input_ids"][row, pos]
    assert (now == BYTES.mask_id).float().mean().item() == pytest.approx(mask_token, abs=0.015)
    changed = ((now != BYTES.mask_id) & (now != label)).float().mean().item()
    assert changed == pytest.approx(random_token * (1 - 1 / 256), abs=0.015)


def test_specials_and_padding_are_never_selected_or_changed() -> None:
    rows = random_rows(2000, 30, special_share=0.5, seed=1)
    rows[:, -5:] = BYTES.pad_id  # right padding too
    out = MaskedLMCollator(BYTES, mask_prob=0.5)(rows)
    cls, sep = torch.full((2000, 1), BYTES.cls_id), torch.full((2000, 1), BYTES.sep_id)
    framed = torch.cat([cls, rows, sep], dim=1)
    row, pos, label = selected(out)
    assert (framed[row, pos] >= FIRST).all(), "a special token or padding was selected"
    assert (label >= FIRST).all()
    special = framed < FIRST
    assert torch.equal(out["input_ids"][special], framed[special]), "a special token changed"


def test_unselected_tokens_and_framing_are_untouched() -> None:
    rows = random_rows(64, 40)
    out = MaskedLMCollator(BYTES, seed=5)(rows)
    ids = out["input_ids"]
    assert ids.shape == (64, 42)
    assert (ids[:, 0] == BYTES.cls_id).all() and (ids[:, -1] == BYTES.sep_id).all()
    row, pos, label = selected(out)
    untouched = torch.ones_like(ids, dtype=torch.bool)
    untouched[row, pos] = False
    assert torch.equal(ids[:, 1:-1][untouched[:, 1:-1]], rows[untouched[:, 1:-1]])
    assert torch.equal(label, rows[row, pos - 1]), "labels are the original tokens"


def test_shapes_are_fixed_whatever_is_drawn() -> None:
    collate = MaskedLMCollator(BYTES)
    for seed in range(5):
        out = collate(random_rows(8, 126, special_share=0.3, seed=seed))
        assert out["mask_positions"].shape == out["labels"].shape == (8, math.ceil(0.15 * 126))
        assert out["mask_positions"].dtype == out["labels"].dtype == torch.long
    assert collate.slots(100) == 15  # no float noise: 0.15 * 100 is 15, not 16


def test_rows_of_specials_only_select_nothing() -> None:
    out = MaskedLMCollator(BYTES)(torch.full((3, 20), BYTES.eos_id))
    assert (out["labels"] == IGNORE_INDEX).all()
    assert (out["input_ids"][:, 1:-1] == BYTES.eos_id).all()


def test_masks_are_reproducible_from_the_seed_and_the_batch() -> None:
    rows = random_rows(16, 50)
    first, again = MaskedLMCollator(BYTES, seed=7)(rows), MaskedLMCollator(BYTES, seed=7)(rows)
    other_seed = MaskedLMCollator(BYTES, seed=8)(rows)
    other_rows = MaskedLMCollator(BYTES, seed=7)(rows.roll(1, dims=1))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["mask_positions"], other_seed["mask_positions"])
    assert not torch.equal(first["mask_positions"], other_rows["mask_positions"])


def test_a_row_is_masked_alike_in_any_batch_and_repeats_differ_by_position() -> None:
    """Per-row draws: a row's masks do not depend on its batch-mates (DDP ranks, accumulated
    micro-batches and one big batch see the same ones), while the same text at two stream
    positions gets two masks."""
    collator, rows = MaskedLMCollator(BYTES, seed=7), random_rows(8, 50)
    starts = torch.arange(8) * 50
    whole = collator(WindowBatch(rows, starts))
    halves = [collator(WindowBatch(rows[i : i + 4], starts[i : i + 4])) for i in (0, 4)]
    for key in whole:
        assert torch.equal(whole[key], torch.cat([h[key] for h in halves]))
    repeated = collator(WindowBatch(rows[:1].expand(6, -1), torch.arange(6) * 1000))
    assert len({tuple(p.tolist()) for p in repeated["mask_positions"]}) == 6


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_works_with_every_tokenizer(kind: str) -> None:
    text = "hello world " * 10
    corpus = [f"{text}\nthe quick brown fox {i} jumps over the lazy dog\n" for i in range(20)]
    options = {"vocab_size": 7 + 100 + 256 + 40} if kind.startswith("spm") else {}
    tokenizer = build_tokenizer(TokenizerConfig(kind=kind, **options), corpus)  # type: ignore[arg-type]
    rows = torch.tensor([tokenizer.encode(text)[:60]] * 4)
    out = MaskedLMCollator(tokenizer, mask_prob=0.3)(rows)
    assert out["input_ids"].max() < tokenizer.vocab_size
    assert (out["input_ids"][:, 0] == tokenizer.cls_id).all()
    _, _, label = selected(out)
    assert len(label) > 0 and (label >= tokenizer.first_regular_id).all()
    assert tokenizer.specials[: len(FIXED_SPECIALS)] == list(FIXED_SPECIALS)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask_prob": 0.0}, "mask_prob must be in"),
        ({"mask_prob": 1.5}, "mask_prob must be in"),
        ({"mask_token": 0.9, "random_token": 0.2}, "sum to at most 1"),
        ({"random_token": -0.1}, "must be >= 0"),
    ],
)
def test_bad_fractions_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MaskedLMCollator(BYTES, **kwargs)


def test_document_ids_follow_the_framing() -> None:
    eos = BYTES.eos_id
    rows = torch.tensor([[10, 11, eos, 12, 13, eos, 14]]) + torch.tensor(
        [[FIRST, FIRST, 0, FIRST, FIRST, 0, FIRST]]
    )
    out = MaskedLMCollator(BYTES).with_document_ids(eos)(rows)
    assert out["document_ids"].tolist() == [[0, 0, 0, 0, 1, 1, 1, 2, 2]]  # <cls> .. <sep>
    assert out["document_ids"].shape == out["input_ids"].shape
