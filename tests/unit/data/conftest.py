"""Keep data tests hermetic: a private datasets cache per test and no network."""

from __future__ import annotations

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


def one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    """The error's message, checked to be the single line users see."""
    message = str(err.value)
    assert message and "\n" not in message, message
    return message


def write(path: Path, text: str) -> Path:
    """Write `text` to `path` (parents created) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
