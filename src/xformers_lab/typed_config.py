"""Build typed, frozen config dataclasses from Hydra/OmegaConf nodes with one-line errors."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf

from xformers_lab.errors import UserError

T = TypeVar("T")


def build(cls: type[T], node: Mapping[str, Any] | Any, prefix: str, **extra: Any) -> T:
    """Instantiate dataclass `cls` from `node`, naming the offending key (`prefix.key`) on error.

    Unknown keys, wrong types and the dataclass's own `__post_init__` checks (which raise
    ValueError) all become a `UserError` that tells the user what to change.
    """
    values = plain(node)
    values.update(extra)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise UserError(
            f"unknown key {prefix}.{unknown[0]}; valid keys of {prefix} are: {', '.join(fields)}"
        )
    for name, field in fields.items():
        required = (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )
        if required and name not in values:
            raise UserError(f"{prefix}.{name} must be set")
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        values[name] = _coerce(value, hints[name], f"{prefix}.{name}")
    try:
        return cls(**values)
    except ValueError as err:
        raise UserError(f"{prefix}: {err}") from None
    except TypeError as err:  # a missing required field
        raise UserError(f"{prefix}: {err}") from None


def plain(node: Any) -> dict[str, Any]:
    """A plain dict; OmegaConf's mandatory-but-missing `???` becomes None (reported as unset)."""
    if node is None:
        return {}
    if isinstance(node, DictConfig):
        missing = {str(k) for k in node if OmegaConf.is_missing(node, k)}
        values = OmegaConf.to_container(node, resolve=True, throw_on_missing=False)
        return {str(k): (None if k in missing else v) for k, v in values.items()}  # type: ignore[union-attr]
    return dict(node)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a simple type hint; ints are accepted where floats are expected."""
    if value is None:
        if _allows_none(hint):
            return None
        raise UserError(f"{key} must be set (got null)")
    if typing.get_origin(hint) is typing.Literal:
        if value in typing.get_args(hint):
            return value
        choices = ", ".join(str(a) for a in typing.get_args(hint))
        raise UserError(f"{key} must be one of {choices}, got {value!r}")
    for option in _options(hint):
        origin = typing.get_origin(option) or option
        if option is Any:
            return value
        if origin is tuple and isinstance(value, list | tuple):
            return _coerce_tuple(value, option, key)
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


def _coerce_tuple(value: list | tuple, hint: Any, key: str) -> tuple:
    """Check a `tuple[X, Y]` item by item (and `tuple[X, ...]` for any length)."""
    args = typing.get_args(hint)
    if not args:
        return tuple(value)
    if len(args) == 2 and args[1] is Ellipsis:
        args = (args[0],) * len(value)
    if len(args) != len(value):
        raise UserError(f"{key} must have {len(args)} items, got {list(value)!r}")
    return tuple(
        _coerce(v, a, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
    )


def _options(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(hint) if a is not type(None))
    return (hint,)


def _allows_none(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in (
        typing.get_args(hint)
    )
