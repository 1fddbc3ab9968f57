"""What one Hugging Face model family's adapter provides, and the helpers adapters share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor

from xformers_lab.core import TransformerConfig
from xformers_lab.errors import UserError

Weights = dict[str, Tensor]


class HFAdapter(ABC):
    """Maps one HF architecture to the core and back: config fields and state-dict keys.

    Weights in both directions are unpadded on the vocabulary side of HF and padded to
    `padded_vocab_size` rows on ours (`pad_rows` / `strip_rows`). Nothing here renames a core
    parameter: the adapter owns every HF name.
    """

    architecture: ClassVar[str]
    """The HF class name in config.json's `architectures` (e.g. `GPT2LMHeadModel`)."""
    model_type: ClassVar[str]
    """config.json's `model_type`."""
    task: ClassVar[str]
    """Our objective the imported checkpoint is marked with (clm, mlm, span)."""

    @abstractmethod
    def config_from_hf(self, hf: dict[str, Any]) -> TransformerConfig:
        """Our config from config.json; an option the core cannot express is a `UserError`."""

    @abstractmethod
    def weights_from_hf(self, hf: Weights, cfg: TransformerConfig) -> Weights:
        """Our state dict (the model's own keys, no `model.` prefix) from HF's."""

    @abstractmethod
    def exports(self, cfg: TransformerConfig) -> bool:
        """Whether `cfg` is this family's kind of model (its arch and position scheme)."""

    @abstractmethod
    def config_to_hf(self, cfg: TransformerConfig) -> dict[str, Any]:
        """config.json fields (without `architectures`/`model_type`); `UserError` when `cfg`
        uses a variant this HF architecture has no field for."""

    @abstractmethod
    def weights_to_hf(self, ours: Weights, cfg: TransformerConfig) -> Weights:
        """HF's state dict from ours; tied weights appear once."""


def require(condition: bool, what: str) -> None:
    """Fail in one line naming what the core or the HF architecture cannot express."""
    if not condition:
        raise UserError(f"unsupported: {what}")


def unsupported_if(hf: dict[str, Any], family: str, key: str, supported: Any) -> None:
    """A config.json option whose value (when present) must be `supported`."""
    value = hf.get(key, supported)
    require(value == supported, f"{family} with {key}={value!r} (only {supported!r} converts)")


def pad_rows(t: Tensor, cfg: TransformerConfig) -> Tensor:
    """Vocabulary-sized rows (or entries) zero-padded to `padded_vocab_size`."""
    extra = cfg.padded_vocab_size - t.shape[0]
    return torch.cat([t, t.new_zeros(extra, *t.shape[1:])]) if extra > 0 else t


def strip_rows(t: Tensor, cfg: TransformerConfig) -> Tensor:
    """The first `vocab_size` rows: the padding dropped."""
    return t[: cfg.vocab_size]


def fused(weights: Weights, names: list[str]) -> Tensor:
    """Concatenate projections along the output dimension (our fused QKV, [gate | up], ...)."""
    return torch.cat([weights[n] for n in names])


def unfuse(t: Tensor, sizes: list[int]) -> list[Tensor]:
    """Split a fused projection back into its parts."""
    return list(t.split(sizes))
