"""The T5 configuration of the core computes what Hugging Face's T5 computes, given its weights:
relative bias, unscaled scores, RMSNorm, gated GELU, cross-attention, padding, both heads."""

from __future__ import annotations

import pytest
import torch

from xformers_lab.core import build_model
from xformers_lab.interop.t5 import T5Adapter

transformers = pytest.importorskip("transformers")


def hf_t5(tied: bool, ffn: str) -> torch.nn.Module:
    config = transformers.T5Config(
        vocab_size=128,
        d_model=32,
        d_kv=16,  # n_heads * d_kv = 64 != d_model, as in t5-v1_1-small
        d_ff=48,
        num_layers=2,
        num_decoder_layers=3,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        dropout_rate=0.0,
        feed_forward_proj="gated-gelu" if ffn == "geglu" else "relu",
        tie_word_embeddings=tied,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(config).eval()
    with torch.no_grad():  # norms start at one: make them count
        for name, param in model.named_parameters():
            if "layer_norm" in name:
                param.uniform_(0.5, 1.5)
    return model


def ours_like(hf: torch.nn.Module) -> torch.nn.Module:
    """Our model from HF's config and weights, through the interop package's T5 mapping."""
    adapter = T5Adapter()
    cfg = adapter.config_from_hf(hf.config.to_dict())
    model = build_model(cfg).eval()
    model.load_state_dict(adapter.weights_from_hf(hf.state_dict(), cfg), strict=True)
    return model


@pytest.mark.parametrize(("tied", "ffn"), [(False, "geglu"), (True, "relu")], ids=["v1.1", "v1.0"])
def test_logits_match_hugging_face_t5(tied: bool, ffn: str) -> None:
    hf = hf_t5(tied, ffn)
    ours = ours_like(hf)
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, 128, (2, 40), generator=generator)  # past max_distance 20
    attention_mask = torch.ones(2, 40, dtype=torch.long)
    attention_mask[1, 25:] = 0  # a right-padded row
    decoder_input_ids = torch.randint(1, 128, (2, 30), generator=generator)
    with torch.no_grad():
        expected = hf(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
        ).logits
        logits = ours(input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
