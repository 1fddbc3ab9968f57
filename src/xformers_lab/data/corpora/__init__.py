"""Corpora: any text source as a `DatasetDict` of "train" and "validation", one document per row."""

from __future__ import annotations

from collections.abc import Callable

from datasets import DatasetDict, IterableDatasetDict

from xformers_lab.data.config import DataConfig
from xformers_lab.data.corpora.files import load_text_files
from xformers_lab.data.corpora.hub import load_hub
from xformers_lab.data.corpora.pystdlib import load_pystdlib
from xformers_lab.errors import UserError

LOADERS: dict[str, Callable[[DataConfig], DatasetDict | IterableDatasetDict]] = {
    "pystdlib": load_pystdlib,
    "text": load_text_files,
    "hf": load_hub,
}
"""Loader per `DataConfig.source`."""


def load_corpus(cfg: DataConfig) -> DatasetDict | IterableDatasetDict:
    """The corpus `cfg` names, as "train" and "validation" splits with one "text" column:
    map-style datasets, or streamed ones (`IterableDatasetDict`) with `cfg.streaming`."""
    if cfg.group_by_length:
        raise UserError(
            "data.group_by_length groups examples by length; a packed corpus has rows of one "
            "length (drop the option)"
        )
    corpus = LOADERS[cfg.source](cfg)
    if cfg.streaming and isinstance(corpus, DatasetDict):  # built in memory (pystdlib)
        return IterableDatasetDict(
            {name: split.to_iterable_dataset() for name, split in corpus.items()}
        )
    return corpus


__all__ = ["LOADERS", "load_corpus"]
