"""Objectives: one module each, named as its `task.name`, found by that name (no registry to
edit). See `objective.py` for the contract and docs/contributing.md for adding one."""

from __future__ import annotations

import pkgutil
from importlib import import_module

from xformers_lab.errors import UserError
from xformers_lab.tasks.objective import OBJECTIVES, Objective

__all__ = ["Objective", "objective_class", "objective_names"]


def objective_class(name: str) -> type[Objective]:
    """The objective `task=<name>` trains: the `Objective` subclass of `xformers_lab.tasks.<name>`
    (imported on first use). An unknown name is a `UserError` listing the known ones."""
    if name not in OBJECTIVES and isinstance(name, str) and name.isidentifier():
        try:
            import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    if name not in OBJECTIVES:
        raise UserError(f"unknown task {name!r}; choose one of: {', '.join(objective_names())}")
    return OBJECTIVES[name]


def objective_names() -> list[str]:
    """Every objective shipped in this package, sorted (imports each module)."""
    modules = [module.name for module in pkgutil.iter_modules(__path__)]
    for name in modules:
        import_module(f"{__name__}.{name}")
    return sorted(name for name in modules if name in OBJECTIVES)
