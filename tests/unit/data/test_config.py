"""DataConfig/TokenizerConfig: validation messages, and the shipped conf/ groups build."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from xformers_lab.data.config import SOURCES, DataConfig, TokenizerConfig, data_config
from xformers_lab.data.corpora import LOADERS
from xformers_lab.errors import UserError
from xformers_lab.typed_config import build

CONF = Path(__file__).parents[3] / "conf"


def test_every_source_has_a_loader() -> None:
    assert set(LOADERS) == set(SOURCES)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"source": "s3"}, "unknown source 's3'; choose one of: pystdlib, text, hf"),
        ({"source": "text"}, "data=text needs data.path=<file or glob>"),
        ({"source": "hf"}, "data=hf needs data.name="),
        ({"source": "pystdlib", "path": "a.txt"}, "path and val_path are read by source=text"),
        ({"source": "text", "path": "a", "name": "x"}, "name and config_name are read by"),
        ({"source": "text", "path": "a", "max_bytes": 10}, "max_bytes is read by source=pystdlib"),
        ({"source": "pystdlib", "max_bytes": 0}, "max_bytes must be positive"),
        ({"source": "text", "path": "a", "sample_by": "word"}, "unknown sample_by 'word'"),
        ({"source": "pystdlib", "val_fraction": 1.0}, "val_fraction must be in (0, 1)"),
        ({"source": "pystdlib", "seq_len": 0}, "seq_len must be positive"),
        ({"source": "pystdlib", "batch_size": -1}, "batch_size must be positive"),
        ({"source": "pystdlib", "num_workers": -1}, "num_workers must be >= 0"),
        ({"source": "pystdlib", "num_proc": 0}, "num_proc must be positive"),
    ],
)
def test_bad_settings_fail_in_one_line(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as direct:
        DataConfig(**fields)  # type: ignore[arg-type]
    assert message in str(direct.value)
    with pytest.raises(UserError) as built:
        build(DataConfig, fields, "data")
    assert str(built.value) == f"data: {direct.value}" and "\n" not in str(built.value)


def test_paths_are_lists() -> None:
    cfg = DataConfig(source="text", path="a.txt", val_path=["b.txt", "c/*.txt"])
    assert (cfg.paths, cfg.val_paths) == (["a.txt"], ["b.txt", "c/*.txt"])
    assert DataConfig(source="text", path=["a", "b"]).paths == ["a", "b"]


def _compose(data: str, tokenizer: str, overrides: list[str]) -> tuple[DataConfig, TokenizerConfig]:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(overrides=[f"+data={data}", f"+tokenizer={tokenizer}", *overrides])
    return data_config(cfg.data), build(TokenizerConfig, cfg.tokenizer, "tokenizer")


@pytest.mark.parametrize(
    ("data", "overrides"),
    [("pystdlib", []), ("text", ["data.path=input.txt"]), ("hf", ["data.name=tiny_stories"])],
)
@pytest.mark.parametrize("tokenizer", ["char", "byte", "spm_unigram", "spm_bpe"])
def test_shipped_groups_build(data: str, tokenizer: str, overrides: list[str]) -> None:
    data_cfg, tok_cfg = _compose(data, tokenizer, overrides)
    assert data_cfg.source == data and tok_cfg.kind == tokenizer


@pytest.mark.parametrize(("data", "key"), [("text", "data.path"), ("hf", "data.name")])
def test_shipped_groups_ask_for_what_they_need(data: str, key: str) -> None:
    with pytest.raises(UserError, match=f"data={data} needs {key}="):
        _compose(data, "byte", [])
