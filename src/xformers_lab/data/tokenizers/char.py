"""CharTokenizer: one id per character of the training text, as in nanoGPT's shakespeare_char."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from xformers_lab.data.tokenizers.base import Tokenizer


class CharTokenizer(Tokenizer):
    """Vocabulary = the sorted set of characters seen in training, after the specials.

    Characters never seen in training encode to `<unk>`.
    """

    kind = "char"

    def __init__(self, chars: str, n_sentinels: int) -> None:
        super().__init__(n_sentinels)
        if len(set(chars)) != len(chars):
            raise ValueError("chars must not repeat a character")
        self.chars = chars
        self._ids = {c: i for i, c in enumerate(chars, start=self.first_regular_id)}

    @classmethod
    def train(cls, texts: Iterable[str], n_sentinels: int) -> CharTokenizer:
        seen: set[str] = set()
        for text in texts:
            seen.update(text)
        return cls("".join(sorted(seen)), n_sentinels)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CharTokenizer:
        return cls(state["chars"], state["n_sentinels"])

    @property
    def vocab_size(self) -> int:
        return self.first_regular_id + len(self.chars)

    def _encode_text(self, text: str) -> list[int]:
        ids, unk = self._ids, self.unk_id
        return [ids.get(c, unk) for c in text]

    def _decode_pieces(self, ids: list[int]) -> str:
        first, chars = self.first_regular_id, self.chars
        return "".join(chars[i - first] for i in ids)

    def _piece_bytes(self) -> list[int]:
        return [len(c.encode("utf-8", "surrogatepass")) for c in self.chars]

    def _piece_state(self) -> dict[str, Any]:
        return {"chars": self.chars}
