"""Logit parity with transformers, both ways, for every family we convert: an HF model imported
into the core computes what transformers computes, and a model of ours exported to an HF
directory loads with transformers' Auto classes and computes what the core computes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from xformers_lab.cli import compose_config
from xformers_lab.core import build_model
from xformers_lab.interop import adapter_for_hf, export_hf, import_hf
from xformers_lab.settings import resolve_settings

from .conftest import VOCAB, make_batch

transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-4
"""Max absolute fp32 logit difference the issue allows."""


def hf_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


def our_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch)[..., : model.config.vocab_size]


def max_diff(ours: torch.Tensor, theirs: torch.Tensor, batch: dict[str, torch.Tensor]) -> float:
    """Over real tokens only: what a padded position outputs is never used."""
    real = (
        torch.ones(batch["decoder_input_ids"].shape, dtype=torch.bool)
        if "decoder_input_ids" in batch
        else batch["attention_mask"].bool()
    )
    assert ours.shape == theirs.shape
    return (ours - theirs)[real].abs().max().item()


def test_import_matches_transformers(hf_model, hf_dir: Path, batch, family) -> None:
    ours, _, _ = import_hf(hf_dir)
    assert ours.config.arch == family.arch
    diff = max_diff(our_logits(ours, batch), hf_logits(hf_model, batch), batch)
    print(f"import {family.name}: max abs logit diff {diff:.2e}")
    assert diff <= TOLERANCE


def test_export_loads_in_transformers_and_matches(hf_model, batch, family, tmp_path) -> None:
    """A model of ours, freshly initialised (not imported), exported and read by AutoModel."""
    cfg = adapter_for_hf(hf_model.config.to_dict()).config_from_hf(hf_model.config.to_dict())
    if family.name == "t5_v1.1":  # as our model=t5 preset trains it: an untied head
        cfg = dataclasses.replace(cfg, tie_embeddings=False)
    torch.manual_seed(1)
    ours = _perturbed_norms(build_model(cfg).eval())
    export_hf(ours, None, tmp_path / "exported")
    auto = (
        transformers.AutoModelForMaskedLM
        if family.arch == "encoder"
        else transformers.AutoModelForSeq2SeqLM
        if family.arch == "encoder_decoder"
        else transformers.AutoModelForCausalLM
    )
    theirs = auto.from_pretrained(tmp_path / "exported").eval()
    assert type(theirs) is type(hf_model)
    diff = max_diff(our_logits(ours, batch), hf_logits(theirs, batch), batch)
    print(f"export {family.name}: max abs logit diff {diff:.2e}")
    assert diff <= TOLERANCE


@pytest.mark.parametrize(
    ("preset", "overrides"),
    [
        ("gpt", []),
        ("llama", []),
        ("bert_original", []),
        ("t5", []),
    ],
)
def test_shipped_presets_export_to_transformers(preset, overrides, tmp_path: Path) -> None:
    """A model as `model=<preset>` trains it goes out to the HF family it corresponds to."""
    sizes = ["model.n_layers=2", "model.d_model=32", "model.n_heads=4", "data.seq_len=32"]
    task = {"gpt": "clm", "llama": "clm", "bert_original": "mlm", "t5": "span"}[preset]
    cfg = compose_config("train", [f"model={preset}", f"task={task}", *sizes, *overrides])
    torch.manual_seed(1)
    ours = _perturbed_norms(build_model(resolve_settings(cfg).model_config(VOCAB)).eval())
    export_hf(ours, None, tmp_path / "exported")
    config = transformers.AutoConfig.from_pretrained(tmp_path / "exported")
    auto = transformers.AutoModelForMaskedLM if preset == "bert_original" else _auto(config)
    theirs = auto.from_pretrained(tmp_path / "exported").eval()
    batch = make_batch(ours.config.arch)
    assert max_diff(our_logits(ours, batch), hf_logits(theirs, batch), batch) <= TOLERANCE


def _auto(config) -> type:
    if config.is_encoder_decoder:
        return transformers.AutoModelForSeq2SeqLM
    return transformers.AutoModelForCausalLM


def test_export_then_import_restores_every_weight(hf_dir: Path, tmp_path: Path) -> None:
    ours, _, _ = import_hf(hf_dir)
    again, _, _ = import_hf(export_hf(ours, None, tmp_path / "exported"))
    assert again.config == ours.config
    expected = ours.state_dict()
    for name, value in again.state_dict().items():
        torch.testing.assert_close(value, expected[name], atol=0, rtol=0, msg=name)


def _perturbed_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Our init leaves norms at one and biases at zero: move them so a mismapped one shows."""
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1:
                scale = 0.1 if name.endswith("bias") else 0.5
                offset = 0.0 if name.endswith("bias") else 1.0
                param.copy_(offset + scale * torch.randn(param.shape, generator=generator))
    return model
