"""Tokenizers by name: a new kind is one `Tokenizer` subclass and one line in `TOKENIZERS`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from xformers_lab.data.tokenizers.base import Tokenizer
from xformers_lab.data.tokenizers.byte import ByteTokenizer
from xformers_lab.data.tokenizers.char import CharTokenizer
from xformers_lab.data.tokenizers.hf import HFTokenizer
from xformers_lab.data.tokenizers.spm import (
    BPETokenizer,
    SentencePieceTokenizer,
    UnigramTokenizer,
    tokenizer_cache_dir,
)
from xformers_lab.errors import UserError

if TYPE_CHECKING:
    from xformers_lab.data.config import TokenizerConfig

TOKENIZERS: dict[str, type[Tokenizer]] = {
    "char": CharTokenizer,
    "byte": ByteTokenizer,
    "spm_unigram": UnigramTokenizer,
    "spm_bpe": BPETokenizer,
}
"""Kinds a run trains (`tokenizer.kind`)."""
SAVED_KINDS: dict[str, type[Tokenizer]] = {**TOKENIZERS, "hf": HFTokenizer}
"""Kinds a checkpoint may hold: the trained ones, and a Hugging Face model's own (imported)."""


def build_tokenizer(cfg: TokenizerConfig, train_texts: Iterable[str]) -> Tokenizer:
    """Train the configured tokenizer on the training texts (`cfg` has checked the kind).

    `train_texts` may be the train split's "text" column (`corpus["train"]["text"]`) or the
    split itself: sentencepiece kinds then find a cached model by the split's fingerprint
    without reading it.
    """
    return TOKENIZERS[cfg.kind].train(train_texts, n_sentinels=cfg.n_sentinels, **cfg.options())


def tokenizer_from_state(state: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer saved with `Tokenizer.state_dict()` (e.g. from a checkpoint)."""
    kind = state.get("kind")
    if kind not in SAVED_KINDS:
        raise UserError(
            f"saved tokenizer kind {kind!r} is unknown to this version; "
            f"known kinds: {', '.join(SAVED_KINDS)}"
        )
    return SAVED_KINDS[kind].from_state(state)


def check_same_tokenizer(
    saved: Tokenizer | dict[str, Any], current: Tokenizer | dict[str, Any], where: str
) -> None:
    """Refuse to pair a checkpoint with another tokenizer: ids would mean different text.

    `saved` is the checkpoint's tokenizer (or its `state_dict()`), `current` the run's; `where`
    names the checkpoint in the one-line `UserError`, e.g. `init_from=runs/x/last.ckpt`.
    """
    saved, current = (
        t if isinstance(t, Tokenizer) else tokenizer_from_state(t) for t in (saved, current)
    )
    if saved.fingerprint() != current.fingerprint():
        raise UserError(
            f"{where}: the checkpoint's tokenizer ({_describe(saved)}) differs from this run's "
            f"({_describe(current)}); use the tokenizer the checkpoint was trained with"
        )


def _describe(tokenizer: Tokenizer) -> str:
    return (
        f"{tokenizer.kind}, {tokenizer.vocab_size} ids, {tokenizer.n_sentinels} sentinels, "
        f"fingerprint {tokenizer.fingerprint()}"
    )


__all__ = [
    "SAVED_KINDS",
    "TOKENIZERS",
    "BPETokenizer",
    "ByteTokenizer",
    "CharTokenizer",
    "HFTokenizer",
    "SentencePieceTokenizer",
    "Tokenizer",
    "UnigramTokenizer",
    "build_tokenizer",
    "check_same_tokenizer",
    "tokenizer_cache_dir",
    "tokenizer_from_state",
]
