"""DataConfig and TokenizerConfig: what text to train on and how to cut it into tokens."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from xformers_lab.data.special_tokens import DEFAULT_N_SENTINELS, first_regular_id
from xformers_lab.data.tokenizers import TOKENIZERS
from xformers_lab.data.tokenizers.spm import N_BYTE_PIECES
from xformers_lab.errors import UserError
from xformers_lab.typed_config import build, plain

SOURCES = ("pystdlib", "text", "hf")
SAMPLE_BY = ("document", "paragraph", "line")


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Where the corpus comes from, how it splits into train/validation, and the batch shape."""

    source: str
    """`pystdlib` (the running Python's standard library, offline), `text` (local files) or `hf`
    (a Hugging Face dataset by name, or a local dataset directory)."""
    path: str | list[str] | None = None
    """source=text: training files or globs (.txt, .jsonl/.json, .csv, .parquet; other extensions
    are read as plain text)."""
    val_path: str | list[str] | None = None
    """source=text: validation files or globs; without it validation is split off `path`."""
    text_field: str = "text"
    """Column holding the text in .jsonl/.json/.csv/.parquet files and hub datasets."""
    fields: dict[str, str] = field(default_factory=dict)
    """Examples objectives: the column of each other role, from `data.<role>_field` keys
    (`data.label_field=sentiment`); a role without one reads the column named as the role."""
    sample_by: str = "document"
    """Plain-text files: one document per `document` (whole file), `paragraph` or `line`."""
    name: str | None = None
    """source=hf: dataset name on the hub, or a local dataset directory."""
    config_name: str | None = None
    """source=hf: the dataset's configuration (subset), if it has several."""
    split: str = "train"
    """source=hf: the training split (slices such as `train[:10%]` work)."""
    val_split: str | None = "validation"
    """source=hf: the validation split; when absent (or null) validation is split off `split`."""
    val_fraction: float = 0.05
    """Share held out for validation when no validation files/split are given: whole documents
    when there are enough of them, else the tail of each document (nanoGPT's split)."""
    max_bytes: int | None = None
    """source=pystdlib: cap on the corpus size in UTF-8 bytes (files picked deterministically)."""
    seq_len: int = 128
    """Tokens the model sees per row."""
    batch_size: int = 16
    """Rows per batch (per device)."""
    shift_windows: bool = True
    """Start the training windows' grid at a seeded offset in [0, stride) each epoch, so epochs
    after the first see new windows (nanoGPT samples random offsets); validation never shifts."""
    num_workers: int = 0
    """DataLoader worker processes; 0 fetches in the training process (batches are cheap)."""
    num_proc: int | None = None
    """Processes for loading and tokenizing the corpus with `datasets`; null means one."""
    streaming: bool = False
    """Read the corpus lazily and tokenize and pack it on the fly, for corpora larger than
    memory. Ranks and dataloader workers read disjoint documents; with one reader the windows
    are those of the in-memory path. Training repeats epochs until trainer.max_steps."""
    shuffle_buffer: int = 10_000
    """streaming: training windows pass through a seeded shuffle buffer of this many windows
    (0 keeps stream order); the in-memory path shuffles each whole epoch instead."""
    document_mask: bool = False
    """Keep attention inside each document of a packed row (a block-diagonal mask, causal for
    decoders) and restart positions at each document, as if documents were not packed."""
    group_by_length: bool = False
    """Examples: draw training batches of similar length (a seeded shuffle, then sorted by
    length within groups of 50 batches, as transformers' `group_by_length`), so per-batch
    padding stays small."""

    def __post_init__(self) -> None:
        _require_choice("source", self.source, SOURCES)
        _require_choice("sample_by", self.sample_by, SAMPLE_BY)
        if self.source == "text":
            _require(bool(self.path), "data=text needs data.path=<file or glob>")
        else:
            _require(
                self.path is None and self.val_path is None,
                f"path and val_path are read by source=text only, not source={self.source}",
            )
        if self.source == "hf":
            _require(bool(self.name), "data=hf needs data.name=<hub dataset or local directory>")
        else:
            _require(
                self.name is None and self.config_name is None,
                f"name and config_name are read by source=hf only, not source={self.source}",
            )
        if self.max_bytes is not None:
            _require(self.source == "pystdlib", "max_bytes is read by source=pystdlib only")
            _require(self.max_bytes > 0, f"max_bytes must be positive, got {self.max_bytes}")
        _require(
            0.0 < self.val_fraction < 1.0,
            f"val_fraction must be in (0, 1), got {self.val_fraction}",
        )
        for name in ("seq_len", "batch_size"):
            _require(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        _require(self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}")
        if self.num_proc is not None:
            _require(self.num_proc > 0, f"num_proc must be positive, got {self.num_proc}")
        _require(
            self.shuffle_buffer >= 0, f"shuffle_buffer must be >= 0, got {self.shuffle_buffer}"
        )

    def column(self, role: str) -> str:
        """The column holding `role` (`text` is `text_field`)."""
        return self.text_field if role == "text" else self.fields.get(role, role)

    @property
    def paths(self) -> list[str]:
        """`path` as a list."""
        return _as_list(self.path)

    @property
    def val_paths(self) -> list[str]:
        """`val_path` as a list (empty when unset)."""
        return _as_list(self.val_path)


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    """Which tokenizer to train on the corpus; the special-token layout is shared by all."""

    kind: str
    """One of `TOKENIZERS`: `char` (characters of the training text), `byte` (UTF-8 bytes),
    `spm_unigram` or `spm_bpe` (SentencePiece subwords trained on the train split, cached)."""
    n_sentinels: int = DEFAULT_N_SENTINELS
    """T5 sentinels `<extra_id_i>` reserved after the fixed specials."""
    vocab_size: int | None = None
    """spm kinds: ids in all, specials and the 256 byte-fallback pieces included (null: 8192)."""
    character_coverage: float | None = None
    """spm kinds: share of the text's characters that get their own piece; rarer characters
    are spelled in bytes (null: 0.9995; 1.0 for small alphabets)."""
    input_sentence_size: int | None = None
    """spm kinds: training sentences (lines grouped up to 2 KB) sampled from the train split;
    0 takes all (null: 200000)."""
    cache_dir: str | None = None
    """spm kinds: where trained models are kept and reused (null: $XFORMERS_LAB_CACHE/tokenizers,
    else ~/.cache/xformers_lab/tokenizers)."""

    def __post_init__(self) -> None:
        _require_choice("kind", self.kind, TOKENIZERS)
        _require(self.n_sentinels >= 0, f"n_sentinels must be >= 0, got {self.n_sentinels}")
        trained = self.kind.startswith("spm_")
        for name in SPM_FIELDS:
            _require(
                trained or getattr(self, name) is None,
                f"{name} is read by the spm_unigram and spm_bpe kinds only, not kind={self.kind}",
            )
        if self.vocab_size is not None:
            smallest = first_regular_id(self.n_sentinels) + N_BYTE_PIECES + 1
            _require(
                self.vocab_size >= smallest,
                f"vocab_size must be at least {smallest} (the specials, {self.n_sentinels} "
                f"sentinels and 256 byte pieces come first), got {self.vocab_size}",
            )
        if self.character_coverage is not None:
            _require(
                0.9 <= self.character_coverage <= 1.0,
                f"character_coverage must be in [0.9, 1], got {self.character_coverage}",
            )
        if self.input_sentence_size is not None:
            _require(
                self.input_sentence_size >= 0,
                f"input_sentence_size must be >= 0, got {self.input_sentence_size}",
            )

    def options(self) -> dict[str, Any]:
        """The kind's training settings beyond `n_sentinels` (unset ones take their defaults)."""
        return {n: getattr(self, n) for n in SPM_FIELDS if getattr(self, n) is not None}


SPM_FIELDS = ("vocab_size", "character_coverage", "input_sentence_size", "cache_dir")
FIELD_SUFFIX = "_field"
"""`data.<role>_field` keys name the column of each role of an examples objective."""


def data_config(node: Mapping[str, Any]) -> DataConfig:
    """The `data` group as a `DataConfig`: every `<role>_field` key but `text_field` is
    gathered into `fields`, so objectives name roles without a field of their own here."""
    values = dict(plain(node))
    roles = [k for k in values if k.endswith(FIELD_SUFFIX) and k != "text_field"]
    fields = {k.removesuffix(FIELD_SUFFIX): values.pop(k) for k in roles}
    for role, column in fields.items():
        if not isinstance(column, str) or not column:
            raise UserError(f"data.{role}{FIELD_SUFFIX} must name a column, got {column!r}")
    return build(DataConfig, {**values, "fields": {**values.get("fields", {}), **fields}}, "data")


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _require_choice(name: str, value: str, choices: Collection[str]) -> None:
    _require(value in choices, f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
