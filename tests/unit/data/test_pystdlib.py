"""source=pystdlib: which files, split by file, capped by max_bytes, deterministic."""

from __future__ import annotations

import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest
from datasets import DatasetDict

from xformers_lab.data.config import DataConfig
from xformers_lab.data.corpora import load_corpus
from xformers_lab.errors import UserError

N_MODULES = 40
OneLine = Callable[[pytest.ExceptionInfo[BaseException]], str]


@pytest.fixture
def fake_stdlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[[Path, str], Path]
) -> Path:
    """A tiny standard library: 40 modules, plus files the corpus must leave out."""
    root = tmp_path / "lib"
    for i in range(N_MODULES):
        write(root / f"pkg{i % 3}" / f"mod{i}.py", f"x = {i:03d}\n")
    write(root / "test" / "test_mod.py", "test\n")
    write(root / "idlelib" / "tests" / "t.py", "tests\n")
    write(root / "site-packages" / "numpy" / "core.py", "site\n")
    write(root / "blank.py", "  \n")
    write(root / "README.txt", "not python\n")
    (root / "latin1.py").write_bytes(b"caf\xe9\n")
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(root)})
    return root


def _texts(corpus: DatasetDict) -> tuple[list[str], list[str]]:
    return list(corpus["train"]["text"]), list(corpus["validation"]["text"])


def test_takes_every_module_and_nothing_else(fake_stdlib: Path) -> None:
    train, val = _texts(load_corpus(DataConfig(source="pystdlib", val_fraction=0.1)))
    assert sorted(train + val) == [f"x = {i:03d}\n" for i in range(N_MODULES)]
    assert len(val) == 4 and not set(train) & set(val)


def test_split_is_deterministic_and_follows_val_fraction(fake_stdlib: Path) -> None:
    cfg = DataConfig(source="pystdlib", val_fraction=0.25)
    assert _texts(load_corpus(cfg)) == _texts(load_corpus(cfg))
    assert len(_texts(load_corpus(cfg))[1]) == 10


def test_max_bytes_caps_the_corpus_by_a_fixed_file_order(fake_stdlib: Path) -> None:
    def picked(max_bytes: int) -> set[str]:
        train, val = _texts(load_corpus(DataConfig(source="pystdlib", max_bytes=max_bytes)))
        return {*train, *val}

    small, large = picked(8 * 5), picked(8 * 20)  # every module is 8 bytes
    assert (len(small), len(large)) == (5, 20)
    assert small < large


def test_too_small_a_cap_fails_in_one_line(fake_stdlib: Path, one_line: OneLine) -> None:
    with pytest.raises(UserError) as err:
        load_corpus(DataConfig(source="pystdlib", max_bytes=8))
    assert "data.max_bytes=8 leaves 1 standard-library file(s)" in one_line(err)


def test_real_standard_library_loads_non_empty_disjoint_splits() -> None:
    cfg = DataConfig(source="pystdlib", max_bytes=1_000_000)
    train, val = _texts(load_corpus(cfg))
    assert train and val
    assert sum(len(t.encode()) for t in train + val) <= 1_000_000
    assert (train, val) == _texts(load_corpus(cfg))
    assert any("def " in t for t in train)
