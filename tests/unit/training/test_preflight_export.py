"""The run directory's disk is checked before anything is created; final weights export to
safetensors and load back into a model built from their metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_model

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.errors import UserError
from xformers_lab.training.export import export_safetensors
from xformers_lab.training.preflight import check_writable


def test_a_creatable_directory_with_room_passes(tmp_path: Path) -> None:
    check_writable(tmp_path / "a" / "b", min_free_gb=0.0)
    assert not (tmp_path / "a").exists()  # checking creates nothing


def test_a_full_disk_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"GB free on the disk of .* less than trainer\.min_free"):
        check_writable(tmp_path / "run", min_free_gb=1e12)


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(UserError, match=r"cannot create the run directory .*f/run: .* is a file"):
        check_writable(tmp_path / "f" / "run", min_free_gb=0.0)


def test_weights_round_trip_through_safetensors(tmp_path: Path) -> None:
    config = TransformerConfig(vocab_size=50, d_model=32, n_heads=2, n_layers=1)
    model = build_model(config).eval()
    path = export_safetensors(model, config, "clm", tmp_path / "model.safetensors")
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    assert metadata["task"] == "clm"
    rebuilt = build_model(TransformerConfig(**json.loads(metadata["model_config"]))).eval()
    missing, unexpected = load_model(rebuilt, str(path))
    assert not missing and not unexpected
    ids = torch.randint(0, 50, (2, 8))
    with torch.no_grad():
        assert torch.equal(rebuilt(ids), model(ids))
    assert not list(tmp_path.glob(".*.tmp"))
