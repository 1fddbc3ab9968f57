"""The T5 configuration of the core computes what Hugging Face's T5 computes, given its weights:
relative bias, unscaled scores, RMSNorm, gated GELU, cross-attention, padding, both heads."""

from __future__ import annotations

import pytest
import torch

from xformers_lab.core import TransformerConfig, build_model

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


def ours_like(hf: torch.nn.Module, tied: bool, ffn: str) -> torch.nn.Module:
    c = hf.config
    cfg = TransformerConfig(
        vocab_size=c.vocab_size,
        arch="encoder_decoder",
        d_model=c.d_model,
        n_layers=c.num_layers,
        n_decoder_layers=c.num_decoder_layers,
        n_heads=c.num_heads,
        d_head=c.d_kv,
        d_ff=c.d_ff,
        position="t5",
        rel_buckets=c.relative_attention_num_buckets,
        rel_max_distance=c.relative_attention_max_distance,
        attn_scale=1.0,
        ffn=ffn,
        norm="rms",
        norm_eps=c.layer_norm_epsilon,
        bias=False,
        tie_embeddings=tied,
        scale_tied_head=tied,
    )
    model = build_model(cfg).eval()
    model.load_state_dict(hf_weights(hf.state_dict(), cfg), strict=True)
    return model


def hf_weights(hf: dict[str, torch.Tensor], cfg: TransformerConfig) -> dict[str, torch.Tensor]:
    """HF T5 state dict -> ours (the mapping the HF adapter will own)."""
    out = {"embed.weight": hf["shared.weight"], "head.weight": hf["lm_head.weight"]}
    for stack, n_layers in (("encoder", cfg.n_layers), ("decoder", cfg.decoder_layers)):
        out[f"{stack}.positions.table.weight"] = hf[
            f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
        ]
        out[f"{stack}.final_norm.weight"] = hf[f"{stack}.final_layer_norm.weight"]
        for i in range(n_layers):
            src, dst = f"{stack}.block.{i}.layer", f"{stack}.blocks.{i}"
            attn = f"{src}.0.SelfAttention"
            out[f"{dst}.attn.qkv.weight"] = torch.cat([hf[f"{attn}.{p}.weight"] for p in "qkv"])
            out[f"{dst}.attn.out.weight"] = hf[f"{attn}.o.weight"]
            out[f"{dst}.attn_norm.weight"] = hf[f"{src}.0.layer_norm.weight"]
            ffn_layer = 1
            if stack == "decoder":
                cross = f"{src}.1.EncDecAttention"
                out[f"{dst}.cross.q.weight"] = hf[f"{cross}.q.weight"]
                out[f"{dst}.cross.kv.weight"] = torch.cat([hf[f"{cross}.{p}.weight"] for p in "kv"])
                out[f"{dst}.cross.out.weight"] = hf[f"{cross}.o.weight"]
                out[f"{dst}.cross_norm.weight"] = hf[f"{src}.1.layer_norm.weight"]
                ffn_layer = 2
            dense = f"{src}.{ffn_layer}.DenseReluDense"
            if f"{dense}.wi_0.weight" in hf:  # gated: [gate | up]
                w_in = torch.cat([hf[f"{dense}.wi_0.weight"], hf[f"{dense}.wi_1.weight"]])
            else:
                w_in = hf[f"{dense}.wi.weight"]
            out[f"{dst}.ffn.w_in.weight"] = w_in
            out[f"{dst}.ffn.w_out.weight"] = hf[f"{dense}.wo.weight"]
            out[f"{dst}.ffn_norm.weight"] = hf[f"{src}.{ffn_layer}.layer_norm.weight"]
    return out


@pytest.mark.parametrize(("tied", "ffn"), [(False, "geglu"), (True, "relu")], ids=["v1.1", "v1.0"])
def test_logits_match_hugging_face_t5(tied: bool, ffn: str) -> None:
    hf = hf_t5(tied, ffn)
    ours = ours_like(hf, tied, ffn)
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
