"""SentencePiece unigram and BPE tokenizers: trained on the corpus once, then reused from a cache.

Training is lossless by construction: no normalisation, whitespace kept as it is, no dummy
prefix, and byte fallback, so any text (code, emoji, control characters) encodes and decodes
back to itself. The model file (a few hundred KB) is the tokenizer's whole state: it travels in
`state_dict()` as bytes, so a checkpoint rebuilds the tokenizer without the corpus.

Cache: models are kept as `<cache_dir>/<kind>-<key>.model`, where `key` hashes the corpus identity
(a `datasets` fingerprint, else the text itself) and every training setting. `cache_dir` defaults to
`$XFORMERS_LAB_CACHE/tokenizers`, else `~/.cache/xformers_lab/tokenizers`.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import sentencepiece as spm

from xformers_lab.data import special_tokens as sp
from xformers_lab.data.tokenizers.base import Tokenizer
from xformers_lab.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_VOCAB_SIZE = 8192
DEFAULT_CHARACTER_COVERAGE = 0.9995
DEFAULT_INPUT_SENTENCE_SIZE = 200_000
CACHE_ENV = "XFORMERS_LAB_CACHE"
SENTENCE_CHARS = 2048
"""Training 'sentences' are documents cut at line ends into pieces of at most this many chars."""
SAMPLE_SEED = 0
"""Seeds the sentence sample and the trainer: the tokenizer does not depend on the run's seed."""
CACHE_FORMAT = 1
"""Bump when the training recipe changes, so old cached models are not reused."""
N_BYTE_PIECES = 256
META_SPACE = "\u2581"
"""sentencepiece's visible space (▁) inside pieces."""


class SentencePieceTokenizer(Tokenizer):
    """Subword pieces of a SentencePiece model laid out on the shared specials.

    The trainer reserves ids 0-3 for `<pad> </s> <unk> <s>` and takes `<mask> <cls> <sep>` and
    the sentinels as control symbols (never produced from text), so the fixed specials come out
    at their ids; then the 256 byte pieces `<0x00>`..`<0xFF>`, then the learned pieces.
    """

    model_type: ClassVar[str]

    def __init__(self, model: bytes, n_sentinels: int) -> None:
        super().__init__(n_sentinels)
        self.model = bytes(model)
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=self.model)
        except (RuntimeError, OSError) as err:
            raise UserError(f"the saved {self.kind} model does not load ({err})") from None
        self._check_layout()
        self.from_cache = False
        """Whether `train` found this model in the cache instead of training it."""

    def _check_layout(self) -> None:
        pieces = [self._sp.id_to_piece(i) for i in range(min(self.first_regular_id, len(self._sp)))]
        regular_is_special = self.first_regular_id < len(self._sp) and self._sp.is_control(
            self.first_regular_id
        )
        if pieces != self.specials or regular_is_special:
            raise UserError(
                f"the {self.kind} model does not have the shared special layout for "
                f"n_sentinels={self.n_sentinels}; retrain it with this version"
            )

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        n_sentinels: int,
        *,
        vocab_size: int = DEFAULT_VOCAB_SIZE,
        character_coverage: float = DEFAULT_CHARACTER_COVERAGE,
        input_sentence_size: int = DEFAULT_INPUT_SENTENCE_SIZE,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> SentencePieceTokenizer:
        """Train on `texts` (a `datasets` column/dataset, or any iterable of documents), or load
        the model cached for the same corpus and settings.

        `input_sentence_size` sentences are sampled uniformly (seeded) when the corpus has more;
        0 trains on all of them.
        """
        settings = {
            "format": CACHE_FORMAT,
            "kind": cls.kind,
            "n_sentinels": n_sentinels,
            "vocab_size": vocab_size,
            "character_coverage": character_coverage,
            "input_sentence_size": input_sentence_size,
        }
        identity = corpus_fingerprint(texts)
        sample: list[str] | None = None
        if identity is None:  # plain texts: their hash is the identity, computed while sampling
            digest = hashlib.sha256()
            sample = sample_sentences(_hashed(texts, digest), input_sentence_size)
            identity = "text:" + digest.hexdigest()
        key = hashlib.sha256(json.dumps([identity, settings], sort_keys=True).encode())
        path = tokenizer_cache_dir(cache_dir) / f"{cls.kind}-{key.hexdigest()[:20]}.model"
        cached = _read_cached(cls, path, n_sentinels)
        if cached is not None:
            return cached
        if sample is None:
            sample = sample_sentences(_as_texts(texts), input_sentence_size)
        model = _train_model(cls, sample, n_sentinels, vocab_size, character_coverage)
        _write_atomically(path, model)
        return cls(model, n_sentinels)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SentencePieceTokenizer:
        return cls(state["model"], state["n_sentinels"])

    def __reduce__(self) -> tuple[Any, ...]:  # the processor does not pickle: rebuild from bytes
        return (type(self), (self.model, self.n_sentinels))

    @property
    def vocab_size(self) -> int:
        return len(self._sp)

    def _encode_text(self, text: str) -> list[int]:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Iterable[str], parse_special: bool = False) -> list[list[int]]:
        """All texts in one call into sentencepiece (its threads, no per-text overhead)."""
        if parse_special:
            return super().encode_batch(texts, parse_special)
        texts = list(texts)
        if not any(META_SPACE in text for text in texts):
            return self._sp.encode(texts)
        return [self._encode_meta_space(text) for text in texts]

    def _encode_meta_space(self, text: str) -> list[int]:
        """sentencepiece reads a literal U+2581 as its space marker; spell it in bytes instead."""
        ids: list[int] = []
        for i, part in enumerate(self._sp.encode(text.split(META_SPACE))):
            ids += self._meta_space_bytes if i else []
            ids += part
        return ids

    @property
    def _meta_space_bytes(self) -> list[int]:
        return [self._sp.piece_to_id(f"<0x{b:02X}>") for b in META_SPACE.encode("utf-8")]

    def _decode_pieces(self, ids: list[int]) -> str:
        return self._sp.decode(ids)

    def _piece_bytes(self) -> list[int]:
        proc = self._sp
        return [
            1 if proc.is_byte(i) else len(proc.id_to_piece(i).replace(META_SPACE, " ").encode())
            for i in range(self.first_regular_id, len(proc))
        ]

    def _piece_state(self) -> dict[str, Any]:
        return {"model": self.model}


class UnigramTokenizer(SentencePieceTokenizer):
    """SentencePiece unigram LM pieces (arXiv 1804.10959), as in T5."""

    kind = "spm_unigram"
    model_type = "unigram"


class BPETokenizer(SentencePieceTokenizer):
    """SentencePiece byte-pair-encoding pieces (arXiv 1508.07909), as in Llama."""

    kind = "spm_bpe"
    model_type = "bpe"


def tokenizer_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where trained models are kept: `cache_dir`, else `$XFORMERS_LAB_CACHE/tokenizers`, else
    `~/.cache/xformers_lab/tokenizers`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "xformers_lab"
    return base / "tokenizers"


def corpus_fingerprint(texts: Iterable[str]) -> str | None:
    """A stable identity of a `datasets` split or column without reading it, else None."""
    source, column = getattr(texts, "source", None), getattr(texts, "column_name", None)
    if source is not None and column is not None:  # datasets' Column of a Dataset
        texts = source
    else:
        column = "text"
    fingerprint = getattr(texts, "_fingerprint", None)
    if fingerprint is None or not hasattr(texts, "cache_files"):  # not a map-style Dataset
        return None
    return f"dataset:{fingerprint}:{column}"


def sample_sentences(texts: Iterable[str], size: int) -> list[str]:
    """A uniform seeded sample of `size` training sentences (all of them when `size` is 0 or
    there are fewer), in corpus order when all are kept."""
    rng = random.Random(SAMPLE_SEED)
    sample: list[str] = []
    for n, sentence in enumerate(s for text in texts for s in split_sentences(text)):
        if size == 0 or n < size:
            sample.append(sentence)
        elif (j := rng.randrange(n + 1)) < size:  # reservoir sampling
            sample[j] = sentence
    return sample


def split_sentences(text: str) -> Iterator[str]:
    """`text` cut at line ends into pieces of at most `SENTENCE_CHARS` (longer lines cut hard);
    line ends stay inside the pieces so the model learns newlines."""
    piece = ""
    for line in text.splitlines(keepends=True):
        if len(piece) + len(line) > SENTENCE_CHARS and piece:
            yield piece
            piece = ""
        while len(line) > SENTENCE_CHARS:
            yield line[:SENTENCE_CHARS]
            line = line[SENTENCE_CHARS:]
        piece += line
    if piece and not piece.isspace():
        yield piece


def _train_model(
    cls: type[SentencePieceTokenizer],
    sentences: list[str],
    n_sentinels: int,
    vocab_size: int,
    character_coverage: float,
) -> bytes:
    if not sentences:
        raise UserError(f"tokenizer={cls.kind} has no training text; the train split is empty")
    names = sp.special_tokens(n_sentinels)
    model = io.BytesIO()
    spm.set_random_generator_seed(SAMPLE_SEED)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            model_type=cls.model_type,
            vocab_size=vocab_size,
            character_coverage=character_coverage,
            byte_fallback=True,
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=3,
            pad_piece=names[0],
            eos_piece=names[1],
            unk_piece=names[2],
            bos_piece=names[3],
            control_symbols=names[4:],
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            allow_whitespace_only_pieces=True,
            split_digits=True,
            max_sentence_length=4 * SENTENCE_CHARS,
            input_sentence_size=0,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
        )
    except RuntimeError as err:
        raise UserError(_training_failure(cls.kind, vocab_size, str(err))) from None
    return model.getvalue()


def _training_failure(kind: str, vocab_size: int, message: str) -> str:
    """sentencepiece's check failure, said in the config's terms."""
    prefix = f"tokenizer={kind}: tokenizer.vocab_size={vocab_size} is too"
    if match := re.search(r"smaller than required_chars\. \d+ vs (\d+)", message):
        return (
            f"{prefix} small: this corpus's characters need {match[1]} ids; raise "
            "tokenizer.vocab_size or lower tokenizer.character_coverage"
        )
    if match := re.search(r"Please set it to a value <= (\d+)", message):
        return f"{prefix} large for this corpus (at most {match[1]}); lower it or add text"
    lines = message.strip().splitlines() or ["training failed"]
    return f"tokenizer={kind} failed to train: {lines[0]}"


def _as_texts(texts: Iterable[str]) -> Iterator[str]:
    """Documents of a `datasets` split (its "text" column) or of any iterable of strings."""
    if hasattr(texts, "column_names") and not hasattr(texts, "column_name"):
        texts = texts["text"]  # type: ignore[index]
    yield from texts


def _hashed(texts: Iterable[str], digest: Any) -> Iterator[str]:
    for text in _as_texts(texts):
        data = text.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
        yield text


def _read_cached(
    cls: type[SentencePieceTokenizer], path: Path, n_sentinels: int
) -> SentencePieceTokenizer | None:
    if not path.is_file():
        return None
    try:
        tokenizer = cls(path.read_bytes(), n_sentinels)
    except (UserError, OSError) as err:
        log.warning("retraining: the cached tokenizer %s is unreadable (%s)", path, err)
        return None
    tokenizer.from_cache = True
    return tokenizer


def _write_atomically(path: Path, data: bytes) -> None:
    """Write then rename, so a concurrent run or a crash never sees half a model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
