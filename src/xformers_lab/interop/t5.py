"""T5 v1.0 and v1.1 (`T5ForConditionalGeneration`) <-> the core's encoder-decoder.

T5 v1.0 (relu, head tied to the embedding and fed hidden states scaled by d_model ** -0.5) and
v1.1 (gated GELU, untied head) are the same core with `ffn` and `tie_embeddings` /
`scale_tied_head` set. Scores are unscaled (`attn_scale=1.0`); each stack's relative-bias table
lives in HF's first layer of that stack and in our stack's position scheme.
"""

from __future__ import annotations

from typing import Any

from xformers_lab.core import TransformerConfig
from xformers_lab.core.layers import FFN_ACTIVATIONS
from xformers_lab.interop.adapter import (
    HFAdapter,
    Weights,
    fused,
    pad_rows,
    require,
    strip_rows,
)

FEED_FORWARD = {"relu": "relu", "gated-gelu": "geglu", "gelu": "gelu", "gated-silu": "swiglu"}
"""T5's `feed_forward_proj` values the core has, and their names here."""
EXPORT_FEED_FORWARD = {ours: theirs for theirs, ours in FEED_FORWARD.items()}
STACKS = ("encoder", "decoder")


class T5Adapter(HFAdapter):
    architecture = "T5ForConditionalGeneration"
    model_type = "t5"
    task = "span"

    def config_from_hf(self, hf: dict[str, Any]) -> TransformerConfig:
        proj = hf.get("feed_forward_proj", "relu")
        require(proj in FEED_FORWARD, f"T5 with feed_forward_proj={proj!r}")
        tied = hf.get("tie_word_embeddings", True)
        # transformers 5 always ties and says whether it scales; before, tying meant scaling
        scaled = hf.get("scale_decoder_outputs", tied)
        require(tied or not scaled, "T5 with scale_decoder_outputs and an untied head")
        return TransformerConfig(
            vocab_size=hf["vocab_size"],
            arch="encoder_decoder",
            d_model=hf["d_model"],
            n_layers=hf["num_layers"],
            n_decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"],
            n_heads=hf["num_heads"],
            d_head=hf["d_kv"],
            d_ff=hf["d_ff"],
            attn_scale=1.0,
            max_seq_len=hf.get("n_positions", 512),
            position="t5",
            rel_buckets=hf.get("relative_attention_num_buckets", 32),
            rel_max_distance=hf.get("relative_attention_max_distance", 128),
            ffn=FEED_FORWARD[proj],
            norm="rms",
            norm_eps=hf.get("layer_norm_epsilon", 1e-6),
            bias=False,
            dropout=hf.get("dropout_rate", 0.0),
            tie_embeddings=tied,
            scale_tied_head=scaled,
        )

    def weights_from_hf(self, hf: Weights, cfg: TransformerConfig) -> Weights:
        embed = pad_rows(hf["shared.weight"], cfg)
        head = embed if cfg.tie_embeddings else pad_rows(hf["lm_head.weight"], cfg)
        out = {"embed.weight": embed, "head.weight": head}
        for stack, n_layers in zip(STACKS, (cfg.n_layers, cfg.decoder_layers), strict=True):
            out[f"{stack}.positions.table.weight"] = hf[f"{stack}.{_bias_table()}"]
            out[f"{stack}.final_norm.weight"] = hf[f"{stack}.final_layer_norm.weight"]
            for i in range(n_layers):
                for ours, theirs in _layer(stack, i, _gated(cfg)):
                    out[ours] = fused(hf, theirs)
        return out

    def exports(self, cfg: TransformerConfig) -> bool:
        return cfg.arch == "encoder_decoder" and cfg.position == "t5"

    def config_to_hf(self, cfg: TransformerConfig) -> dict[str, Any]:
        require(cfg.norm == "rms", f"T5 with norm={cfg.norm} (T5 has RMSNorm)")
        require(cfg.ffn in EXPORT_FEED_FORWARD, f"T5 with ffn={cfg.ffn}")
        require(not cfg.bias, "T5 with biases")
        require(cfg.attn_scale == 1.0, f"T5 with attn_scale={cfg.attn_scale} (T5 uses 1.0)")
        require(cfg.n_kv_heads == cfg.n_heads, "T5 with grouped-query attention")
        require(cfg.norm_position == "pre" and cfg.final_norm, "T5 with post-norm blocks")
        require(not cfg.embedding_norm, "T5 with embedding_norm")
        return {
            "vocab_size": cfg.vocab_size,
            "d_model": cfg.d_model,
            "d_kv": cfg.d_head,
            "d_ff": cfg.d_ff,
            "num_layers": cfg.n_layers,
            "num_decoder_layers": cfg.decoder_layers,
            "num_heads": cfg.n_heads,
            "relative_attention_num_buckets": cfg.rel_buckets,
            "relative_attention_max_distance": cfg.rel_max_distance,
            "dropout_rate": cfg.dropout,
            "layer_norm_epsilon": cfg.norm_eps,
            "feed_forward_proj": EXPORT_FEED_FORWARD[cfg.ffn],
            "tie_word_embeddings": cfg.tie_embeddings,
            "scale_decoder_outputs": cfg.scale_tied_head,
            "is_encoder_decoder": True,
        }

    def weights_to_hf(self, ours: Weights, cfg: TransformerConfig) -> Weights:
        out = {"shared.weight": strip_rows(ours["embed.weight"], cfg)}
        if not cfg.tie_embeddings:
            out["lm_head.weight"] = strip_rows(ours["head.weight"], cfg)
        for stack, n_layers in zip(STACKS, (cfg.n_layers, cfg.decoder_layers), strict=True):
            out[f"{stack}.{_bias_table()}"] = ours[f"{stack}.positions.table.weight"]
            out[f"{stack}.final_layer_norm.weight"] = ours[f"{stack}.final_norm.weight"]
            for i in range(n_layers):
                for name, theirs in _layer(stack, i, _gated(cfg)):
                    # every fused weight joins equal parts: q|k|v, k|v (no GQA), gate|up
                    out.update(zip(theirs, ours[name].chunk(len(theirs)), strict=True))
        return out


def _bias_table() -> str:
    """Where HF keeps a stack's relative-bias table: in its first layer."""
    return "block.0.layer.0.SelfAttention.relative_attention_bias.weight"


def _gated(cfg: TransformerConfig) -> bool:
    return FFN_ACTIVATIONS[cfg.ffn].gated


def _layer(stack: str, i: int, gated: bool) -> list[tuple[str, list[str]]]:
    """(our weight, the HF weights fused into it, in order) for layer `i` of `stack`."""
    src, dst = f"{stack}.block.{i}.layer", f"{stack}.blocks.{i}"
    attn = f"{src}.0.SelfAttention"
    pairs = [
        (f"{dst}.attn.qkv.weight", [f"{attn}.{p}.weight" for p in "qkv"]),
        (f"{dst}.attn.out.weight", [f"{attn}.o.weight"]),
        (f"{dst}.attn_norm.weight", [f"{src}.0.layer_norm.weight"]),
    ]
    ffn_layer = 1
    if stack == "decoder":
        cross = f"{src}.1.EncDecAttention"
        pairs += [
            (f"{dst}.cross.q.weight", [f"{cross}.q.weight"]),
            (f"{dst}.cross.kv.weight", [f"{cross}.{p}.weight" for p in "kv"]),
            (f"{dst}.cross.out.weight", [f"{cross}.o.weight"]),
            (f"{dst}.cross_norm.weight", [f"{src}.1.layer_norm.weight"]),
        ]
        ffn_layer = 2
    dense = f"{src}.{ffn_layer}.DenseReluDense"
    w_in = ["wi_0", "wi_1"] if gated else ["wi"]  # gated: [gate | up]
    return [
        *pairs,
        (f"{dst}.ffn.w_in.weight", [f"{dense}.{w}.weight" for w in w_in]),
        (f"{dst}.ffn.w_out.weight", [f"{dense}.wo.weight"]),
        (f"{dst}.ffn_norm.weight", [f"{src}.{ffn_layer}.layer_norm.weight"]),
    ]
