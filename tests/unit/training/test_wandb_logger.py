"""`logger=wandb` settings: the API key check, the mode, names outside Hydra, the flat config,
the samples table's guard rails."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from xformers_lab.errors import UserError
from xformers_lab.paths import conf_dir
from xformers_lab.tasks import objective_class
from xformers_lab.training import wandb_logger as wl
from xformers_lab.training.wandb_config import WANDB_TARGET
from xformers_lab.training.wandb_samples import sample_callbacks
from xformers_lab.typed_config import build


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No WANDB_API_KEY, no WANDB_MODE, and a netrc path of our own (not yet written)."""
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    return tmp_path / "netrc"


def test_api_key_from_the_environment_or_netrc(
    no_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not wl.has_api_key()
    no_key.write_text("machine example.com login me password secret\n")
    assert not wl.has_api_key()
    no_key.write_text("machine api.wandb.ai login user password 0123456789abcdef\n")
    assert wl.has_api_key()
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert not wl.has_api_key()  # a self-hosted server needs its own login
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef")
    assert wl.has_api_key()


def test_auto_mode_goes_offline_without_a_key_and_says_how_to_sync(
    no_key: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert wl.resolve_mode("auto", "/runs/a") == "offline"
    (line,) = capsys.readouterr().err.splitlines()
    assert "offline" in line and line.endswith("wandb sync /runs/a/wandb/offline-run-*")
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef")
    assert wl.resolve_mode("auto", "/runs/a") == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wl.resolve_mode("auto", "/runs/a") is None  # wandb reads WANDB_MODE itself
    assert wl.resolve_mode("offline", "/runs/a") == "offline"
    assert capsys.readouterr().err == ""


def test_outside_hydra_the_run_is_named_after_its_directory(
    no_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert wl.run_name_and_group(Path("/runs/my-run")) == ("my-run", None)
    assert wl.auto_tags() == []
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "scratch"))
    logger = wl.wandb_logger(str(tmp_path / "my-run"), tags=["baseline"])
    run = logger.experiment  # a disabled run: nothing written, nothing sent
    assert run.name == "my-run" and list(run.tags) == ["baseline"]
    assert logger.save_dir == str(tmp_path / "scratch")
    run.finish()


def test_flatten_joins_keys_with_dots() -> None:
    config = {"seed": 1, "model": {"d_model": 64, "pos": {"theta": 1e4}}, "betas": [0.9, 0.95]}
    assert wl.flatten(config) == {
        "seed": 1, "model.d_model": 64, "model.pos.theta": 1e4, "betas": [0.9, 0.95],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "onlin"}, "logger.wandb.mode must be one of auto, online, offline, disabled"),
        ({"samples_every_n_steps": -1}, "samples_every_n_steps must be >= 0"),
        ({"sample_prompts": []}, "sample_prompts is empty"),
        ({"colour": "blue"}, "unknown key logger.wandb.colour"),
    ],
)
def test_bad_options_name_the_key(options: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        build(wl.WandbConfig, options, "logger.wandb")


def test_samples_only_for_objectives_that_write_text_and_only_when_asked(
    no_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    every = wl.wandb_logger(str(tmp_path), samples_every_n_steps=10)
    never = wl.wandb_logger(str(tmp_path), samples_every_n_steps=0)
    (callback,) = sample_callbacks([every, never], objective_class("clm").generative)
    assert callback.logger is every and callback.every_n_steps == 10
    assert callback.prompts == list(wl.WandbConfig().sample_prompts)
    assert sample_callbacks([every], objective_class("mlm").generative) == []


def test_the_checked_target_is_the_wandb_logger() -> None:
    assert f"{wl.wandb_logger.__module__}.{wl.wandb_logger.__qualname__}" == WANDB_TARGET
    assert OmegaConf.load(conf_dir() / "logger" / "wandb.yaml").wandb._target_ == WANDB_TARGET
