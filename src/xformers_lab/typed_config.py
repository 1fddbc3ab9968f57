"""Build typed, frozen config dataclasses from Hydra/OmegaConf nodes with one-line errors."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from xformers_lab.errors import UserError

T = TypeVar("T")


def build(cls: type[T], node: Mapping[str, Any] | Any, prefix: str, **extra: Any) -> T:
    """Instantiate dataclass `cls` from `node`, naming the offending key (`prefix.key`) on error.

    Unknown keys, wrong types and the dataclass's own `__post_init__` checks (which raise
    ValueError) all become a `UserError` that tells the user what to change.
    """
    values = _plain(node)
    values.update(extra)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(
            f"unknown key {prefix}.{unknown[0]}; valid keys of {prefix} are: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        values[name] = _coerce(value, hints[name], f"{prefix}.{name}")
    try:
        return cls(**values)
    except ValueError as err:
        raise UserError(f"{prefix}: {err}") from None
    except TypeError as err:  # a missing required field
        raise UserError(f"{prefix}: {err}") from None


def _plain(node: Any) -> dict[str, Any]:
    if node is None:
        return {}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(node, DictConfig):
            return dict(OmegaConf.to_container(node, resolve=True))  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return dict(node)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a simple type hint; ints are accepted where floats are expected."""
    if value is None:
        if _allows_none(hint):
            return None
        raise UserError(f"{key} must be set (got null)")
    for option in _options(hint):
        origin = typing.get_origin(option) or option
        if option is Any:
            return value
        if origin is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin is bool and isinstance(value, bool):
            return value
        if origin is str and isinstance(value, str):
            return value
        if origin in (tuple, list) and isinstance(value, list | tuple):
            return origin(value)
        if origin is dict and isinstance(value, Mapping):
            return dict(value)
    names = " or ".join(getattr(o, "__name__", str(o)) for o in _options(hint) if o is not None)
    raise UserError(f"{key} must be {names}, got {value!r}")


def _options(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is typing.Literal:
        return tuple({type(a) for a in typing.get_args(hint)})
    return (hint,)


def _allows_none(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in (
        typing.get_args(hint)
    )
