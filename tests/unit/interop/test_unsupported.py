"""What the core cannot express fails in one line naming it, before any checkpoint is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.errors import UserError
from xformers_lab.interop import export_hf, import_hf

CASES = {
    "gpt2": ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx=True"),
    "llama": ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_scaling"),
    "bert": ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
    "t5_v1.0": ({"feed_forward_proj": "gated-tanh"}, "feed_forward_proj='gated-tanh'"),
}


@pytest.mark.parametrize("family", list(CASES), indirect=True)
def test_unsupported_option_fails_naming_it(family, hf_dir: Path) -> None:
    change, named = CASES[family.name]
    config = json.loads((hf_dir / "config.json").read_text())
    (hf_dir / "config.json").write_text(json.dumps(config | change))
    with pytest.raises(UserError) as err:
        import_hf(hf_dir)
    assert str(err.value).startswith("unsupported: ") and named in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("family", ["llama"], indirect=True)
def test_llama3_rope_parameters_are_unsupported(hf_dir: Path) -> None:
    config = json.loads((hf_dir / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}
    (hf_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="rope_type='llama3'"):
        import_hf(hf_dir)


@pytest.mark.parametrize("family", ["gpt2"], indirect=True)
def test_unknown_architecture_lists_the_supported_ones(hf_dir: Path) -> None:
    config = json.loads((hf_dir / "config.json").read_text())
    config |= {"architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox"}
    (hf_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=r"unsupported architecture GPTNeoXForCausalLM.*GPT2"):
        import_hf(hf_dir)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"arch": "decoder", "position": "alibi"}, "position=alibi"),
        ({"arch": "decoder", "position": "rope", "norm": "rms"}, "Llama with ffn=gelu"),
        ({"arch": "encoder", "position": "learned"}, "BERT from a pre-norm encoder"),
        ({"arch": "decoder", "position": "learned", "n_kv_heads": 1}, "grouped-query"),
    ],
)
def test_export_of_a_model_no_hf_architecture_expresses(overrides, named, tmp_path) -> None:
    cfg = TransformerConfig(vocab_size=50, d_model=32, n_layers=1, n_heads=2, **overrides)
    with pytest.raises(UserError, match=named):
        export_hf(build_model(cfg), None, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("family", ["llama"], indirect=True)
def test_weights_that_do_not_fit_the_config_fail_in_one_line(hf_dir: Path) -> None:
    config = json.loads((hf_dir / "config.json").read_text())
    (hf_dir / "config.json").write_text(json.dumps(config | {"num_hidden_layers": 3}))
    with pytest.raises(UserError, match=r"the weights lack 'model\.layers\.2\.") as err:
        import_hf(hf_dir)
    assert "\n" not in str(err.value)
    (hf_dir / "config.json").write_text(json.dumps(config | {"intermediate_size": 40}))
    with pytest.raises(UserError, match=r"do not fit config\.json") as err:
        import_hf(hf_dir)
    assert "\n" not in str(err.value)


def test_no_config_json_is_not_an_hf_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no config\.json"):
        import_hf(tmp_path)


@pytest.mark.parametrize("family", ["gpt2"], indirect=True)
def test_hub_style_pytorch_model_bin_imports_like_safetensors(hf_model, hf_dir: Path) -> None:
    """The hub's gpt2: a pytorch_model.bin saved from GPT2Model (no `transformer.` prefix)."""
    (hf_dir / "model.safetensors").unlink()
    torch.save(hf_model.transformer.state_dict(), hf_dir / "pytorch_model.bin")
    ours, _, _ = import_hf(hf_dir)
    ids = torch.arange(3, 30).unsqueeze(0)
    with torch.no_grad():
        expected = hf_model(ids).logits
        torch.testing.assert_close(ours(ids)[..., : expected.shape[-1]], expected)
