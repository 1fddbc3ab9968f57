"""Config-group bases generated from the typed dataclasses, so every field of a typed config can
be overridden on any preset (`model.n_kv_heads=2` with `model=gpt`) while the dataclass stays
the single source of truth for names and defaults."""

from __future__ import annotations

import dataclasses
from typing import Any

from hydra.core.config_store import ConfigStore

from xformers_lab.core import TransformerConfig

FIELDS_OPTION = "_fields"
"""Name of the generated base option in each group; presets list it first in their defaults."""


def field_defaults(cls: type, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every init field of dataclass `cls` with its default (None where it has none)."""
    defaults = {}
    for field in dataclasses.fields(cls):
        if not field.init or field.name in exclude:
            continue
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory()
        else:
            defaults[field.name] = None
    return defaults


def register_schemas() -> None:
    """Store the generated bases in Hydra's ConfigStore (idempotent)."""
    ConfigStore.instance().store(
        group="model",
        name=FIELDS_OPTION,
        node=field_defaults(TransformerConfig, exclude=("vocab_size",)),
    )
