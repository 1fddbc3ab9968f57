"""Tokenizer: the interface every tokenizer offers, with the shared special tokens handled once."""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, ClassVar

from xformers_lab.data import special_tokens as sp


class Tokenizer(ABC):
    """Text <-> ids over the shared special layout of `special_tokens.py`.

    A subclass owns only its regular pieces, ids `first_regular_id` .. `vocab_size - 1`: how text
    becomes them and back, how many UTF-8 bytes each stands for, and the state that rebuilds it.
    Specials (parsing, rendering, ids) are handled here so every tokenizer treats them alike.
    """

    kind: ClassVar[str]
    """The registry name, saved in `state_dict` so `tokenizer_from_state` finds the class."""

    pad_id = sp.PAD_ID
    eos_id = sp.EOS_ID
    unk_id = sp.UNK_ID
    bos_id = sp.BOS_ID
    mask_id = sp.MASK_ID
    cls_id = sp.CLS_ID
    sep_id = sp.SEP_ID

    def __init__(self, n_sentinels: int) -> None:
        self.n_sentinels = n_sentinels
        self.specials = sp.special_tokens(n_sentinels)
        self._special_ids = {token: i for i, token in enumerate(self.specials)}
        self._special_pattern = re.compile("|".join(map(re.escape, self.specials)))

    @classmethod
    @abstractmethod
    def train(cls, texts: Iterable[str], n_sentinels: int) -> Tokenizer:
        """Build the tokenizer from the training texts."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict[str, Any]) -> Tokenizer:
        """Rebuild the tokenizer from `state_dict()`."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Ids in use, specials included."""

    @abstractmethod
    def _encode_text(self, text: str) -> list[int]:
        """Ids of plain text (no special strings parsed)."""

    @abstractmethod
    def _decode_pieces(self, ids: list[int]) -> str:
        """Text of a run of regular ids."""

    @abstractmethod
    def _piece_bytes(self) -> list[int]:
        """UTF-8 bytes of each regular id, in id order."""

    @abstractmethod
    def _piece_state(self) -> dict[str, Any]:
        """What rebuilds the regular pieces, in plain python types."""

    @property
    def first_regular_id(self) -> int:
        """The id of the first non-special piece."""
        return sp.first_regular_id(self.n_sentinels)

    def sentinel_id(self, index: int) -> int:
        """The id of T5 sentinel `<extra_id_{index}>`."""
        if not 0 <= index < self.n_sentinels:
            raise ValueError(f"sentinel {index} out of range; there are {self.n_sentinels}")
        return sp.sentinel_id(index)

    @property
    def chat_template(self) -> str | None:
        """A Hugging Face tokenizer's own chat template (jinja); None: the project's template
        with role markers at reserved ids (`role_id`)."""
        return None

    def role_id(self, role: str) -> int:
        """The id of chat role `role`'s marker (`special_tokens.chat_marker_id`)."""
        if role not in sp.CHAT_ROLES:
            raise ValueError(f"unknown chat role {role!r}; one of: {', '.join(sp.CHAT_ROLES)}")
        if self.n_sentinels < len(sp.CHAT_ROLES):
            raise ValueError(
                f"chat role markers use the ids of the first {len(sp.CHAT_ROLES)} sentinels; "
                f"this tokenizer has {self.n_sentinels} (tokenizer.n_sentinels)"
            )
        return sp.chat_marker_id(role)

    @property
    def document_start_id(self) -> int:
        """What a decoder reads before a document's first token: `</s>`, since training joins
        documents with it."""
        return self.eos_id

    def never_generated(self, encoder_decoder: bool) -> list[int]:
        """Ids generation never emits: specials a model never saw as targets. A decoder saw
        only `</s>`; an encoder-decoder also emits its sentinels."""
        end = self.first_regular_id if not encoder_decoder else sp.sentinel_id(0)
        return [i for i in range(end) if i != self.eos_id]

    def encode(self, text: str, parse_special: bool = False) -> list[int]:
        """Ids of `text`, adding no specials. With `parse_special`, literal special strings in the
        text (`<mask>`, `<extra_id_3>`, `</s>`, ...) become their ids (fill-mask, T5 prompts)."""
        if not parse_special:
            return self._encode_text(text)
        ids: list[int] = []
        start = 0
        for match in self._special_pattern.finditer(text):
            ids += self._encode_text(text[start : match.start()])
            ids.append(self._special_ids[match.group()])
            start = match.end()
        return ids + self._encode_text(text[start:])

    def encode_batch(self, texts: Iterable[str], parse_special: bool = False) -> list[list[int]]:
        """`encode` of each text."""
        return [self.encode(text, parse_special) for text in texts]

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """Text of `ids`; specials appear as their token strings unless `skip_special`."""
        first, size = self.first_regular_id, self.vocab_size
        parts: list[str] = []
        run: list[int] = []
        for value in ids:
            i = int(value)
            if not 0 <= i < size:
                raise ValueError(f"id {i} is outside the vocabulary [0, {size})")
            if i >= first:
                run.append(i)
                continue
            if run:
                parts.append(self._decode_pieces(run))
                run = []
            if not skip_special:
                parts.append(self.specials[i])
        if run:
            parts.append(self._decode_pieces(run))
        return "".join(parts)

    def token_bytes(self) -> list[int]:
        """UTF-8 bytes of text each id stands for (0 for specials), to turn nats into bits/byte."""
        return [0] * self.first_regular_id + self._piece_bytes()

    def state_dict(self) -> dict[str, Any]:
        """Plain python state (str/int/list/bytes) for checkpoints loaded with weights_only=True."""
        return {"kind": self.kind, "n_sentinels": self.n_sentinels, **self._piece_state()}

    def fingerprint(self) -> str:
        """Stable hash of the state: equal fingerprints mean the same ids for the same text."""
        canonical = json.dumps(self.state_dict(), sort_keys=True, default=bytes.hex)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(vocab_size={self.vocab_size}, n_sentinels={self.n_sentinels})"
