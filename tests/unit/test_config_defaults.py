"""The shipped YAML groups and their typed dataclasses agree on every default: a YAML key either
equals its dataclass default, or it is what the option exists to choose (a data source, a
tokenizer kind, hardware) or what the dataclass cannot know (its default is null)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from omegaconf import OmegaConf

from xformers_lab.data.config import FIELD_SUFFIX, DataConfig, TokenizerConfig
from xformers_lab.paths import conf_dir
from xformers_lab.tasks import objective_class
from xformers_lab.training.trainer_config import TrainerConfig

GROUPS: dict[str, tuple[type, set[str]]] = {
    "data": (DataConfig, {"source"}),
    "tokenizer": (TokenizerConfig, {"kind"}),
    "trainer": (TrainerConfig, {"accelerator", "devices", "strategy", "precision"}),
}
"""group -> (its dataclass, the keys an option exists to choose)."""


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (conf_dir() / group).glob("*.yaml"))


def yaml_values(group: str, option: str) -> dict[str, Any]:
    """The option file's own keys, interpolations unresolved."""
    node = OmegaConf.to_container(OmegaConf.load(conf_dir() / group / f"{option}.yaml"))
    return {k: v for k, v in node.items() if k != "defaults"}  # type: ignore[union-attr]


def defaults(cls: type) -> dict[str, Any]:
    return {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(cls)
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
    }


def drift(values: dict[str, Any], cls: type, chosen: set[str]) -> dict[str, tuple[Any, Any]]:
    """Keys whose YAML value differs from a non-null dataclass default without being chosen."""
    expected = defaults(cls)
    return {
        key: (value, expected[key])
        for key, value in values.items()
        if key in expected
        and key not in chosen
        and expected[key] is not None
        and value != expected[key]
    }


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in options(g)], ids=lambda v: str(v)
)
def test_group_yaml_repeats_its_dataclass_defaults(group: str, option: str) -> None:
    cls, chosen = GROUPS[group]
    values = yaml_values(group, option)
    assert drift(values, cls, chosen) == {}
    roles = {k: v for k, v in values.items() if k.endswith(FIELD_SUFFIX) and k != "text_field"}
    assert roles == {k: k.removesuffix(FIELD_SUFFIX) for k in roles}  # a role's default column


def task_values(option: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(task keys, data keys) of a task YAML: its own keys, or, for one in the `_global_`
    package, its `task:` and `data:` nodes."""
    values = yaml_values("task", option)
    if GLOBAL_PACKAGE in (conf_dir() / "task" / f"{option}.yaml").read_text():
        return dict(values["task"]), dict(values.get("data", {}))
    return values, {}


GLOBAL_PACKAGE = "# @package _global_"


@pytest.mark.parametrize("option", options("task"))
def test_task_yaml_repeats_its_options_defaults(option: str) -> None:
    task, data = task_values(option)
    values = {k: v for k, v in task.items() if not str(v).startswith("${")}
    objective = objective_class(values.pop("name"))
    assert drift(values, objective.Options, set()) == {}
    assert set(values) <= {f.name for f in dataclasses.fields(objective.Options)}
    roles = {k.removesuffix(FIELD_SUFFIX) for k in data if k.endswith(FIELD_SUFFIX)}
    assert set(data) == {f"{r}{FIELD_SUFFIX}" for r in roles}  # a task adds role columns only
    assert roles <= set(objective.fields)
    assert data == {f"{r}{FIELD_SUFFIX}": r for r in roles}  # a role's default column


def test_drift_is_caught() -> None:
    assert drift({"seq_len": 256}, DataConfig, set()) == {"seq_len": (256, 128)}
    assert drift({"source": "text"}, DataConfig, {"source"}) == {}
