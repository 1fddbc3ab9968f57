"""ByteTokenizer: the 256 UTF-8 byte values; any text encodes, nothing is unknown."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xformers_lab.data.tokenizers.base import Tokenizer

N_BYTES = 256


class ByteTokenizer(Tokenizer):
    """Id `first_regular_id + b` for byte `b` of the UTF-8 encoding. Needs no training.

    Decoding replaces invalid byte sequences (a sampled model may emit them) with U+FFFD.
    """

    kind = "byte"

    @classmethod
    def train(cls, texts: Iterable[str], n_sentinels: int) -> ByteTokenizer:
        return cls(n_sentinels)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ByteTokenizer:
        return cls(state["n_sentinels"])

    @property
    def vocab_size(self) -> int:
        return self.first_regular_id + N_BYTES

    def _encode_text(self, text: str) -> list[int]:
        first = self.first_regular_id
        return [b + first for b in text.encode("utf-8")]

    def _decode_pieces(self, ids: list[int]) -> str:
        first = self.first_regular_id
        return bytes(i - first for i in ids).decode("utf-8", errors="replace")

    def _piece_bytes(self) -> list[int]:
        return [1] * N_BYTES

    def _piece_state(self) -> dict[str, Any]:
        return {}
