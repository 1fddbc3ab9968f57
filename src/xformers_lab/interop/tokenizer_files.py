"""Carry a Hugging Face directory's tokenizer into an `HFTokenizer`, and write it back out.

Found in this order: `tokenizer.json` (the `tokenizers` library), else a sentencepiece model
(`spiece.model` as T5 names it, `tokenizer.model` as Llama does). Which token plays which role
comes from `tokenizer_config.json` / `special_tokens_map.json`, else config.json's ids.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xformers_lab.data.tokenizers.hf import ROLES, HFTokenizer, load_backend

TOKENIZER_JSON = "tokenizer.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
SPM_FILES = ("spiece.model", "tokenizer.model")
SENTINEL = re.compile(r"<extra_id_(\d+)>")
T5_EXTRA_IDS = 100
"""HF's T5Tokenizer default: sentinels appended after the sentencepiece pieces."""


@dataclass(frozen=True)
class _Vocab:
    """One tokenizer file, seen through what the import needs from it."""

    backend: str
    model: str | bytes
    specials: dict[str, int]
    id_of: Callable[[str], int | None]
    text_of: Callable[[int], str | None]
    defaults: dict[str, int]
    """Role ids the file itself declares (a sentencepiece model's pad, eos, unk, bos)."""


def read_tokenizer(hf_dir: Path, hf_config: dict[str, Any]) -> HFTokenizer | None:
    """The directory's tokenizer at the model's ids, or None when it has no tokenizer file."""
    settings = _json(hf_dir / "special_tokens_map.json") | _json(hf_dir / "tokenizer_config.json")
    vocab = _tokenizers_vocab(hf_dir) or _sentencepiece_vocab(hf_dir, hf_config, settings)
    if vocab is None:
        return None
    specials = dict(vocab.specials)
    roles = {role: _role_id(role, settings, hf_config, vocab) for role in ROLES}
    if roles["eos"] is None:  # BERT: documents are joined with [SEP]
        roles["eos"] = roles["sep"]
    if roles["pad"] is None:  # GPT-2, Llama: padding is masked anyway; HF pads with eos
        roles["pad"] = roles["eos"]
    for token_id in roles.values():
        if token_id is not None and token_id not in specials.values():
            specials[vocab.text_of(token_id) or f"<id_{token_id}>"] = token_id
    sentinels = sorted(
        (int(m.group(1)), i) for t, i in specials.items() if (m := SENTINEL.fullmatch(t))
    )
    return HFTokenizer(
        backend=vocab.backend,
        model=vocab.model,
        specials=specials,
        roles=roles,
        sentinels=[i for _, i in sentinels],
        chat_template=_chat_template(hf_dir, settings),
    )


def write_tokenizer(tokenizer: HFTokenizer, hf_dir: Path, model_type: str) -> None:
    """The tokenizer file and its role map, so `AutoTokenizer.from_pretrained(hf_dir)` loads it."""
    roles = {
        f"{role}_token": tokenizer.specials[i]
        for role, i in tokenizer.roles.items()
        if i is not None
    }
    config: dict[str, Any] = dict(roles)
    if tokenizer.backend == "tokenizers":
        (hf_dir / TOKENIZER_JSON).write_text(str(tokenizer.model))
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    else:
        name = SPM_FILES[0] if model_type == "t5" else SPM_FILES[1]
        (hf_dir / name).write_bytes(bytes(tokenizer.model))
        config["tokenizer_class"] = "T5Tokenizer" if model_type == "t5" else "LlamaTokenizer"
        if model_type == "t5":
            config["extra_ids"] = tokenizer.n_sentinels
    if tokenizer.chat_template:
        config["chat_template"] = tokenizer.chat_template
    (hf_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (hf_dir / "special_tokens_map.json").write_text(json.dumps(roles, indent=2) + "\n")


def _tokenizers_vocab(hf_dir: Path) -> _Vocab | None:
    path = hf_dir / TOKENIZER_JSON
    if not path.is_file():
        return None
    text = path.read_text()
    backend = load_backend("tokenizers", text)
    added = json.loads(text).get("added_tokens", [])
    specials = {
        t["content"]: t["id"]
        for t in added
        if t.get("special", False) or SENTINEL.fullmatch(t["content"])
    }
    return _Vocab("tokenizers", text, specials, backend.token_to_id, backend.id_to_token, {})


def _sentencepiece_vocab(
    hf_dir: Path, hf_config: dict[str, Any], settings: dict[str, Any]
) -> _Vocab | None:
    path = next((hf_dir / n for n in SPM_FILES if (hf_dir / n).is_file()), None)
    if path is None:
        return None
    model = path.read_bytes()
    sp = load_backend("sentencepiece", model)
    default_extra = T5_EXTRA_IDS if hf_config.get("model_type") == "t5" else 0
    n_extra = int(settings.get("extra_ids", default_extra))
    specials = {
        sp.id_to_piece(i): i for i in range(len(sp)) if sp.is_control(i) or sp.is_unknown(i)
    }
    # HF's T5Tokenizer: <extra_id_0> is the last id, <extra_id_{n-1}> the first extra one
    specials |= {f"<extra_id_{k}>": len(sp) + n_extra - 1 - k for k in range(n_extra)}
    texts = {i: t for t, i in specials.items()}

    def id_of(token: str) -> int | None:
        found = sp.piece_to_id(token)
        return specials.get(token, found if sp.id_to_piece(found) == token else None)

    def text_of(token_id: int) -> str | None:
        return texts.get(token_id, sp.id_to_piece(token_id) if token_id < len(sp) else None)

    declared = {"pad": sp.pad_id(), "eos": sp.eos_id(), "unk": sp.unk_id(), "bos": sp.bos_id()}
    defaults = {role: i for role, i in declared.items() if i >= 0}
    return _Vocab("sentencepiece", model, specials, id_of, text_of, defaults)


def _role_id(
    role: str, settings: dict[str, Any], hf_config: dict[str, Any], vocab: _Vocab
) -> int | None:
    token = settings.get(f"{role}_token")
    if isinstance(token, dict):
        token = token.get("content")
    if isinstance(token, str) and vocab.id_of(token) is not None:
        return vocab.id_of(token)
    value = hf_config.get(f"{role}_token_id", vocab.defaults.get(role))
    return value[0] if isinstance(value, list) else value


def _chat_template(hf_dir: Path, settings: dict[str, Any]) -> str | None:
    """The tokenizer's chat template: `chat_template.jinja` (newer transformers) or the
    `chat_template` of tokenizer_config.json (a string, or named templates: the default)."""
    path = hf_dir / CHAT_TEMPLATE_FILE
    if path.is_file():
        return path.read_text()
    template = settings.get("chat_template")
    if isinstance(template, list):  # [{"name": ..., "template": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template else None


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}
