"""typed_config.build: a config node becomes a typed dataclass, or one line naming the bad key."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal, Optional

import pytest
from omegaconf import OmegaConf

from xformers_lab.errors import UserError
from xformers_lab.typed_config import build


@dataclass(frozen=True, kw_only=True)
class Opt:
    lr: float
    steps: int = 10
    name: str = "adamw"
    fused: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    clip: float | None = None
    eps: Optional[float] = None  # noqa: UP045 - the pre-3.10 spelling must work too
    derived: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


@dataclass(frozen=True, kw_only=True)
class Mode:
    mode: Literal["pre", "post"] = "pre"


@dataclass(frozen=True, kw_only=True)
class Name:
    name: str


def test_a_plain_dict_builds_with_coercions() -> None:
    opt = build(Opt, {"lr": 1, "betas": [0.8, 0.9], "clip": 1.0}, "optim")
    assert opt == Opt(lr=1.0, betas=(0.8, 0.9), clip=1.0)
    assert type(opt.lr) is float and type(opt.betas) is tuple


def test_unknown_key_names_prefix_and_lists_valid_keys() -> None:
    with pytest.raises(UserError) as err:
        build(Opt, {"lr": 1e-3, "weight_dacay": 0.1}, "optim")
    message = str(err.value)
    assert "unknown key optim.weight_dacay" in message
    assert "lr, steps, name, fused, betas, clip, eps" in message
    assert "derived" not in message  # init=False fields are not settable


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"lr": "fast"}, "optim.lr must be float, got 'fast'"),
        ({"lr": 1e-3, "steps": 2.5}, "optim.steps must be int, got 2.5"),
        ({"lr": 1e-3, "steps": True}, "optim.steps must be int, got True"),
        ({"lr": True}, "optim.lr must be float, got True"),
        ({"lr": 1e-3, "fused": "yes"}, "optim.fused must be bool, got 'yes'"),
        ({"lr": 1e-3, "name": 3}, "optim.name must be str, got 3"),
        ({"lr": 1e-3, "betas": 0.9}, "optim.betas must be tuple, got 0.9"),
        ({"lr": 1e-3, "clip": "x"}, "optim.clip must be float, got 'x'"),
    ],
)
def test_wrong_type_is_a_user_error(node: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=f"^{re.escape(message)}$"):
        build(Opt, node, "optim")


def test_int_is_accepted_where_float_is_expected() -> None:
    opt = build(Opt, {"lr": 3, "clip": 2, "eps": 0}, "optim")
    assert (opt.lr, opt.clip, opt.eps) == (3.0, 2.0, 0.0)
    assert all(type(v) is float for v in (opt.lr, opt.clip, opt.eps))


@pytest.mark.parametrize("key", ["lr", "steps", "name"])
def test_null_is_rejected_unless_optional(key: str) -> None:
    with pytest.raises(UserError, match=rf"^optim\.{key} must be set \(got null\)$"):
        build(Opt, {"lr": 1e-3, key: None}, "optim")


def test_null_is_accepted_for_optional_fields() -> None:
    opt = build(Opt, {"lr": 1e-3, "clip": None, "eps": None}, "optim")
    assert opt.clip is None and opt.eps is None


def test_post_init_value_error_becomes_a_user_error_with_the_prefix() -> None:
    with pytest.raises(UserError, match=r"^optim: lr must be positive, got -1\.0$"):
        build(Opt, {"lr": -1}, "optim")


def test_missing_required_field_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"^optim\.lr must be set$"):
        build(Opt, {}, "optim")


def test_extra_keywords_fill_fields_the_node_does_not_hold() -> None:
    assert build(Opt, None, "optim", lr=2e-4, steps=5) == Opt(lr=2e-4, steps=5)


def test_omegaconf_dictconfig_is_resolved_and_built() -> None:
    root = OmegaConf.create({"base_lr": 3, "optim": {"lr": "${base_lr}", "betas": [0.9, 0.95]}})
    opt = build(Opt, root.optim, "optim")
    assert opt == Opt(lr=3.0, betas=(0.9, 0.95))
    with pytest.raises(UserError, match=r"unknown key optim\.typo"):
        build(Opt, OmegaConf.create({"lr": 1, "typo": 0}), "optim")


def test_literal_rejects_values_outside_the_choices() -> None:
    with pytest.raises(UserError, match=r"block\.mode"):
        build(Mode, {"mode": "sandwich"}, "block")


def test_a_missing_mandatory_value_is_reported_as_unset() -> None:
    with pytest.raises(UserError, match=r"data\.name must be set"):
        build(Name, OmegaConf.create({"name": "???"}), "data")


def test_tuple_items_are_checked() -> None:
    with pytest.raises(UserError, match=r"optim\.betas"):
        build(Opt, {"lr": 1e-3, "betas": [0.9]}, "optim")
