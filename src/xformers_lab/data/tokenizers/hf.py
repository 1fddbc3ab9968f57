"""HFTokenizer: an imported Hugging Face model's own tokenizer, with its own special ids.

Our trained tokenizers share one special layout at fixed ids; a model imported from Hugging Face
(`python -m xformers_lab.convert from-hf`) comes with its vocabulary already fixed, e.g. GPT-2's
`<|endoftext|>` at 50256 or T5's `<extra_id_0>` at 32099. This kind wraps that tokenizer (a
`tokenizer.json` through the `tokenizers` library, or a sentencepiece model plus T5's extra ids)
and takes the model's ids for each special role; roles a model lacks (GPT-2 has no `<mask>`) are
None. Its whole state (the file's content and the ids) travels in the checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import sentencepiece as spm

from xformers_lab.data.tokenizers.base import Tokenizer
from xformers_lab.errors import UserError

ROLES = ("pad", "eos", "unk", "bos", "mask", "cls", "sep")
"""Special roles the collators and decoders ask for, as `<role>_id` attributes."""
BACKENDS = ("tokenizers", "sentencepiece")
META_SPACE = "\u2581"
"""sentencepiece's visible space (▁) that starts a word's first piece."""


class HFTokenizer(Tokenizer):
    """A Hugging Face tokenizer at the model's own ids.

    Args:
        backend: `tokenizers` (`model` is the text of a tokenizer.json) or `sentencepiece`
            (`model` is the bytes of a .model file; ids past its pieces are `specials`, e.g.
            T5's `<extra_id_N>`).
        model: the tokenizer file's content.
        specials: special token text -> id; literal special text in prompts maps to these ids.
        roles: `pad`, `eos`, ... -> id, or None when the model has no such token.
        sentinels: ids of `<extra_id_0>`, `<extra_id_1>`, ... (T5), in that order.
        chat_template: the tokenizer's own chat template (jinja), when it has one.
    """

    kind = "hf"

    def __init__(
        self,
        *,
        backend: str,
        model: str | bytes,
        specials: dict[str, int],
        roles: dict[str, int | None],
        sentinels: list[int],
        chat_template: str | None = None,
    ) -> None:
        super().__init__(n_sentinels=len(sentinels))
        self._chat_template = chat_template
        if backend not in BACKENDS:
            raise UserError(f"unknown hf tokenizer backend {backend!r}; one of {BACKENDS}")
        self.backend, self.model = backend, model
        self._impl = load_backend(backend, model)
        self._base_size = (
            self._impl.get_vocab_size(with_added_tokens=True)
            if backend == "tokenizers"
            else len(self._impl)
        )
        self._special_ids = dict(specials)
        self.specials = {i: token for token, i in specials.items()}  # id -> text (fill_mask)
        by_length = sorted(specials, key=len, reverse=True)  # the longest match wins
        self._special_pattern = re.compile("|".join(map(re.escape, by_length)) or r"(?!)")
        self.roles = {role: roles.get(role) for role in ROLES}
        for role, value in self.roles.items():
            setattr(self, f"{role}_id", value)
        self._sentinels = list(sentinels)

    @classmethod
    def train(cls, texts: Iterable[str], n_sentinels: int) -> HFTokenizer:
        raise UserError(
            "tokenizer.kind=hf is not trained: it comes inside a checkpoint imported with "
            "python -m xformers_lab.convert from-hf; fine-tune that with init_from=<ckpt>"
        )

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> HFTokenizer:
        return cls(
            backend=state["backend"],
            model=state["model"],
            specials=state["specials"],
            roles=state["roles"],
            sentinels=state["sentinels"],
            chat_template=state.get("chat_template"),  # imported before chat templates: none
        )

    @property
    def vocab_size(self) -> int:
        return max(self._base_size, max(self.specials, default=-1) + 1)

    @property
    def chat_template(self) -> str | None:
        return self._chat_template

    def role_id(self, role: str) -> int:
        raise ValueError(
            "an imported tokenizer has no role markers of ours; chats use its own chat_template"
        )

    @property
    def first_regular_id(self) -> int:
        """0: specials sit anywhere in an imported vocabulary, none is suppressed by position."""
        return 0

    def sentinel_id(self, index: int) -> int:
        if not 0 <= index < self.n_sentinels:
            raise ValueError(f"sentinel {index} out of range; there are {self.n_sentinels}")
        return self._sentinels[index]

    @property
    def document_start_id(self) -> int:
        """The model's bos (Llama's `<s>`), else its eos (GPT-2's `<|endoftext|>`)."""
        return self.bos_id if self.bos_id is not None else self.eos_id

    def never_generated(self, encoder_decoder: bool) -> list[int]:
        """None: an imported model decodes as it did in transformers, nothing suppressed."""
        return []

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        parts: list[str] = []
        run: list[int] = []
        for value in ids:
            i = int(value)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is outside the vocabulary [0, {self.vocab_size})")
            if i not in self.specials:
                run.append(i)
                continue
            if run:
                parts.append(self._decode_run(run, after_text=bool(parts)))
                run = []
            if not skip_special:
                parts.append(self.specials[i])
        if run:
            parts.append(self._decode_run(run, after_text=bool(parts)))
        return "".join(parts)

    def _decode_run(self, ids: list[int], after_text: bool) -> str:
        """sentencepiece drops the space that starts a text; after a special it is kept."""
        text = self._decode_pieces(ids)
        if after_text and self.backend == "sentencepiece":
            first = self._impl.id_to_piece(ids[0]) if ids[0] < self._base_size else ""
            text = " " * first.startswith(META_SPACE) + text
        return text

    def _encode_text(self, text: str) -> list[int]:
        if not text:
            return []
        if self.backend == "tokenizers":
            return self._impl.encode(text, add_special_tokens=False).ids
        return self._impl.encode(text)

    def _decode_pieces(self, ids: list[int]) -> str:
        ids = [i for i in ids if i < self._base_size]  # rows a model pads its vocabulary with
        return self._impl.decode(ids)

    def _piece_bytes(self) -> list[int]:
        return [
            0 if i in self.specials else len(self._decode_pieces([i]).encode("utf-8"))
            for i in range(self.vocab_size)
        ]

    def _piece_state(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "specials": dict(self._special_ids),
            "roles": dict(self.roles),
            "sentinels": list(self._sentinels),
            # only when there is one: the state (and fingerprint) of others is unchanged
            **({"chat_template": self._chat_template} if self._chat_template else {}),
        }


def load_backend(backend: str, model: str | bytes) -> Any:
    """The tokenizers or sentencepiece object behind an `HFTokenizer`."""
    if backend == "sentencepiece":
        return spm.SentencePieceProcessor(model_proto=bytes(model))
    try:
        from tokenizers import Tokenizer as TokenizersBackend
    except ImportError:
        raise UserError(
            "a tokenizer.json needs the tokenizers library: pip install 'xformers_lab[interop]'"
        ) from None
    return TokenizersBackend.from_str(str(model))
