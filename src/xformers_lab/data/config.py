"""DataConfig and TokenizerConfig: what text to train on and how to cut it into tokens."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from xformers_lab.data.special_tokens import DEFAULT_N_SENTINELS
from xformers_lab.data.tokenizers import TOKENIZERS

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
    seq_len: int = 256
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
    """One of `TOKENIZERS`: `char` (characters of the training text) or `byte` (UTF-8 bytes)."""
    n_sentinels: int = DEFAULT_N_SENTINELS
    """T5 sentinels `<extra_id_i>` reserved after the fixed specials."""

    def __post_init__(self) -> None:
        _require_choice("kind", self.kind, TOKENIZERS)
        _require(self.n_sentinels >= 0, f"n_sentinels must be >= 0, got {self.n_sentinels}")


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _require_choice(name: str, value: str, choices: Collection[str]) -> None:
    _require(value in choices, f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
