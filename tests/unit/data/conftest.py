"""Keep data tests hermetic (private datasets and tokenizer caches per test, no network); shared
helpers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import datasets
import huggingface_hub.constants
import pytest


@pytest.fixture(autouse=True)
def _isolated_datasets(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf_cache"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    datasets.disable_progress_bars()
    monkeypatch.setenv("XFORMERS_LAB_CACHE", str(tmp_path_factory.mktemp("xformers_lab_cache")))


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(err.value)
    assert message and "\n" not in message, message
    return message


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def one_line() -> Callable[[pytest.ExceptionInfo[BaseException]], str]:
    """The raised error's message, checked to be the single line users see."""
    return _one_line


@pytest.fixture
def write() -> Callable[[Path, str], Path]:
    """Write text to a path (parents created) and return the path."""
    return _write
