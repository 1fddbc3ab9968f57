"""Corpora: any text source as a `DatasetDict` of "train" and "validation", one document per row."""

from __future__ import annotations

from collections.abc import Callable

from datasets import DatasetDict

from xformers_lab.data.config import DataConfig
from xformers_lab.data.corpora.files import load_text_files
from xformers_lab.data.corpora.hub import load_hub
from xformers_lab.data.corpora.pystdlib import load_pystdlib

LOADERS: dict[str, Callable[[DataConfig], DatasetDict]] = {
    "pystdlib": load_pystdlib,
    "text": load_text_files,
    "hf": load_hub,
}
"""Loader per `DataConfig.source`."""


def load_corpus(cfg: DataConfig) -> DatasetDict:
    """The corpus `cfg` names, as "train" and "validation" splits with one "text" column."""
    return LOADERS[cfg.source](cfg)


__all__ = ["LOADERS", "load_corpus"]
