"""Tokenizers: the shared special layout, round trips, special parsing, bytes, and saved state."""

from __future__ import annotations

import io
import random

import pytest
import torch

from xformers_lab.data import special_tokens as sp
from xformers_lab.data.config import TokenizerConfig
from xformers_lab.data.tokenizers import (
    TOKENIZERS,
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    build_tokenizer,
    tokenizer_from_state,
)
from xformers_lab.errors import UserError
from xformers_lab.typed_config import build

KINDS = list(TOKENIZERS)
SPM_KINDS = [kind for kind in KINDS if kind.startswith("spm_")]
TRAIN_TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\nCafé — ✓ 𝔘\n"
MORE_TEXT = """Beautiful is better than ugly.
Explicit is better than implicit.
Simple is better than complex.
Complex is better than complicated.
Flat is better than nested.
Sparse is better than dense.
Readability counts.
Errors should never pass silently.
In the face of ambiguity, refuse the temptation to guess.
"""
"""Extra training text for the sentencepiece kinds, so a few hundred pieces can be learned."""
SPM_VOCAB = 340


def make(kind: str, text: str = TRAIN_TEXT, n_sentinels: int = 5, **options: object) -> Tokenizer:
    if kind in SPM_KINDS:
        options = {"vocab_size": SPM_VOCAB - 5 + n_sentinels, **options}
        return build_tokenizer(
            TokenizerConfig(kind=kind, n_sentinels=n_sentinels, **options), [text, MORE_TEXT]
        )
    return build_tokenizer(TokenizerConfig(kind=kind, n_sentinels=n_sentinels), [text])


@pytest.mark.parametrize("kind", KINDS)
def test_special_layout_is_the_shared_one(kind: str) -> None:
    tok = make(kind)
    ids = [tok.pad_id, tok.eos_id, tok.unk_id, tok.bos_id, tok.mask_id, tok.cls_id, tok.sep_id]
    assert ids == [0, 1, 2, 3, 4, 5, 6]
    assert [tok.sentinel_id(i) for i in range(5)] == [7, 8, 9, 10, 11]
    assert tok.first_regular_id == sp.first_regular_id(5) == 12
    assert tok.decode(range(12)) == "".join(sp.special_tokens(5))
    assert tok.kind == kind and tok.n_sentinels == 5
    with pytest.raises(ValueError, match="sentinel 5 out of range"):
        tok.sentinel_id(5)


@pytest.mark.parametrize("kind", KINDS)
def test_training_text_round_trips_without_specials(kind: str) -> None:
    tok = make(kind)
    ids = tok.encode(TRAIN_TEXT)
    assert all(tok.first_regular_id <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == TRAIN_TEXT
    assert tok.encode_batch([TRAIN_TEXT, "hear"]) == [ids, tok.encode("hear")]


def test_byte_round_trips_any_unicode() -> None:
    text = "naïve 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 中文 🎉 \x00\t\r\n"
    tok = make("byte")
    ids = tok.encode(text)
    assert len(ids) == len(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert tok.vocab_size == tok.first_regular_id + 256


def random_unicode(rng: random.Random, length: int) -> str:
    """Any code point but lone surrogates (which no UTF-8 text holds), biased to odd ones."""
    pools = [(0, 0x7F), (0x80, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
    chars = []
    for _ in range(length):
        low, high = rng.choice(pools)
        chars.append(chr(rng.randint(low, high)))
    return "".join(chars)


@pytest.mark.parametrize("kind", ["byte", *SPM_KINDS])
def test_any_unicode_round_trips_through_byte_fallback(kind: str) -> None:
    tok = make(kind)
    rng = random.Random(0)
    texts = [
        "naïve 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 中文 🎉 \x00\t\r\n",
        "  leading and trailing spaces, tabs\t\tand\n\n\nnewlines  ",
        "sentencepiece's own space marker ▁ and ▁▁ stays text",
        "<mask> <extra_id_0> </s> look like specials but are text",
        *(random_unicode(rng, rng.randint(1, 60)) for _ in range(200)),
    ]
    for text in texts:
        ids = tok.encode(text)
        assert all(tok.first_regular_id <= i < tok.vocab_size for i in ids)
        assert tok.decode(ids) == text
        assert sum(tok.token_bytes()[i] for i in ids) == len(text.encode("utf-8"))
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


def test_byte_decode_replaces_invalid_utf8() -> None:
    tok = make("byte")
    assert tok.decode([tok.first_regular_id + 0xFF, *tok.encode("ok")]) == "\ufffdok"


def test_char_vocabulary_is_the_sorted_training_characters() -> None:
    tok = make("char")
    assert isinstance(tok, CharTokenizer)
    assert tok.chars == "".join(sorted(set(TRAIN_TEXT)))
    assert tok.vocab_size == tok.first_regular_id + len(set(TRAIN_TEXT))
    assert tok.encode("F€") == [tok.encode("F")[0], tok.unk_id]
    assert tok.decode(tok.encode("F€")) == "F<unk>"


@pytest.mark.parametrize("kind", KINDS)
def test_parse_special_maps_literal_tokens_to_their_ids(kind: str) -> None:
    tok = make(kind, text="ab<>_/ extraid0123456789msk")
    text = "a<mask>b <extra_id_3></s><extra_id_9>"
    ids = tok.encode(text, parse_special=True)
    expected = [*tok.encode("a"), tok.mask_id, *tok.encode("b "), tok.sentinel_id(3), tok.eos_id]
    assert ids == expected + tok.encode("<extra_id_9>")  # only 5 sentinels: 9 stays text
    assert tok.decode(ids) == text
    assert tok.mask_id not in tok.encode(text) and tok.decode(tok.encode(text)) == text


@pytest.mark.parametrize("kind", KINDS)
def test_decode_can_skip_specials_and_rejects_unknown_ids(kind: str) -> None:
    tok = make(kind)
    ids = [tok.bos_id, *tok.encode("hear me"), tok.sentinel_id(0), tok.eos_id, tok.pad_id]
    assert tok.decode(ids) == "<s>hear me<extra_id_0></s><pad>"
    assert tok.decode(ids, skip_special=True) == "hear me"
    assert tok.decode(torch.tensor(ids)) == tok.decode(ids)
    for bad in (tok.vocab_size, -100):
        with pytest.raises(ValueError, match="outside the vocabulary"):
            tok.decode([bad])


@pytest.mark.parametrize("kind", KINDS)
def test_token_bytes_count_the_utf8_bytes_of_the_text(kind: str) -> None:
    tok = make(kind)
    table = tok.token_bytes()
    assert len(table) == tok.vocab_size
    assert table[: tok.first_regular_id] == [0] * tok.first_regular_id
    ids = [*tok.encode(TRAIN_TEXT, parse_special=True), tok.eos_id]
    assert sum(table[i] for i in ids) == len(TRAIN_TEXT.encode("utf-8"))


@pytest.mark.parametrize("kind", KINDS)
def test_state_survives_a_weights_only_checkpoint(kind: str) -> None:
    tok = make(kind)
    assert _is_plain(tok.state_dict())
    buffer = io.BytesIO()
    torch.save({"tokenizer": tok.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)["tokenizer"]
    rebuilt = tokenizer_from_state(state)
    assert type(rebuilt) is type(tok)
    assert rebuilt.fingerprint() == tok.fingerprint()
    assert rebuilt.vocab_size == tok.vocab_size and rebuilt.token_bytes() == tok.token_bytes()
    assert rebuilt.encode(TRAIN_TEXT) == tok.encode(TRAIN_TEXT)


def _is_plain(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    return type(value) in (str, int, bytes)


def test_fingerprint_is_stable_and_tells_tokenizers_apart() -> None:
    # a constant: the fingerprint must not depend on the process (hash seeds, dict order)
    assert make("byte", n_sentinels=100).fingerprint() == "3a0a315de99bc8e8"
    prints = {
        make("byte").fingerprint(),
        make("byte", n_sentinels=6).fingerprint(),
        make("char").fingerprint(),
        make("char", text="other text").fingerprint(),
    }
    assert len(prints) == 4
    assert make("char").fingerprint() == make("char").fingerprint()


def test_byte_ignores_training_text() -> None:
    assert isinstance(make("byte", text=""), ByteTokenizer)
    assert make("byte", text="").fingerprint() == make("byte").fingerprint()


def test_unknown_kinds_fail_in_one_line_listing_the_known_ones() -> None:
    choices = "char, byte, spm_unigram, spm_bpe"
    with pytest.raises(UserError, match=f"unknown kind 'bpe9'; choose one of: {choices}") as err:
        build(TokenizerConfig, {"kind": "bpe9"}, "tokenizer")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=f"tokenizer kind 'bpe9' is unknown.*{choices}"):
        tokenizer_from_state({"kind": "bpe9", "n_sentinels": 0})
    with pytest.raises(ValueError, match="n_sentinels must be >= 0"):
        TokenizerConfig(kind="byte", n_sentinels=-1)
