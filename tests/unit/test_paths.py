"""conf_dir(): the repo's conf/ from a checkout, the packaged copy from an installed wheel."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from xformers_lab import paths

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_checkout_uses_the_repos_conf() -> None:
    assert paths.conf_dir() == REPO / "conf"


def test_the_packaged_copy_wins_and_a_missing_tree_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "src" / "xformers_lab"
    monkeypatch.setattr(paths, "_PACKAGE_DIR", package)
    with pytest.raises(FileNotFoundError, match="config tree is missing") as err:
        paths.conf_dir()
    assert str(package / "conf") in str(err.value) and str(tmp_path / "conf") in str(err.value)
    (tmp_path / "conf").mkdir()
    assert paths.conf_dir() == tmp_path / "conf"
    (package / "conf").mkdir(parents=True)
    assert paths.conf_dir() == package / "conf"


def test_an_installed_wheel_ships_and_finds_conf(tmp_path: Path) -> None:
    # Offline: the build backend (hatchling, in the dev extra) comes from this environment and
    # pip may not look at any index, so the test never reaches the network.
    assert importlib.util.find_spec("hatchling"), "hatchling belongs in the dev extra"
    pip = [sys.executable, "-m", "pip", "--quiet"]
    offline = ["--no-index", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "wheel", *offline, "-w", tmp_path, REPO], check=True)
    (wheel,) = tmp_path.glob("xformers_lab-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-index", "--no-deps", "--target", site, wheel], check=True
    )

    probe = "import xformers_lab.paths as p; print(p.__file__); print(p.conf_dir())"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    module_file, conf = map(Path, out.stdout.split())
    assert module_file.is_relative_to(site / "xformers_lab")
    assert conf == site / "xformers_lab" / "conf"
    assert _files(conf) and _files(conf) == _files(REPO / "conf")
