"""Tokenizers by name: a new kind is one `Tokenizer` subclass and one line in `TOKENIZERS`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from xformers_lab.data.tokenizers.base import Tokenizer
from xformers_lab.data.tokenizers.byte import ByteTokenizer
from xformers_lab.data.tokenizers.char import CharTokenizer
from xformers_lab.errors import UserError

if TYPE_CHECKING:
    from xformers_lab.data.config import TokenizerConfig

TOKENIZERS: dict[str, type[Tokenizer]] = {
    "char": CharTokenizer,
    "byte": ByteTokenizer,
}


def build_tokenizer(cfg: TokenizerConfig, train_texts: Iterable[str]) -> Tokenizer:
    """Train the configured tokenizer on the training texts (`cfg` has checked the kind)."""
    return TOKENIZERS[cfg.kind].train(train_texts, n_sentinels=cfg.n_sentinels)


def tokenizer_from_state(state: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer saved with `Tokenizer.state_dict()` (e.g. from a checkpoint)."""
    kind = state.get("kind")
    if kind not in TOKENIZERS:
        raise UserError(
            f"saved tokenizer kind {kind!r} is unknown to this version; "
            f"known kinds: {', '.join(TOKENIZERS)}"
        )
    return TOKENIZERS[kind].from_state(state)


__all__ = [
    "TOKENIZERS",
    "ByteTokenizer",
    "CharTokenizer",
    "Tokenizer",
    "build_tokenizer",
    "tokenizer_from_state",
]
