"""Llama-family decoders (`LlamaForCausalLM`) <-> the core's RoPE, RMSNorm, SwiGLU, GQA decoder.

HF's Llama rotates q/k with `rotate_half` (pairs (x[i], x[i + d/2])), the layout our RoPE uses,
so q and k weights map unpermuted; gate and up fuse into our [gate | up] `w_in`.
"""

from __future__ import annotations

from typing import Any

from xformers_lab.core import TransformerConfig
from xformers_lab.interop.adapter import (
    HFAdapter,
    Weights,
    fused,
    pad_rows,
    require,
    strip_rows,
    unfuse,
    unsupported_if,
)

PREFIX = "model."
LAYER = (("attn.out", "self_attn.o_proj"), ("ffn.w_out", "mlp.down_proj"))
"""(ours, Llama's) unfused linear layers inside one block."""
NORMS = (("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"))


class LlamaAdapter(HFAdapter):
    architecture = "LlamaForCausalLM"
    model_type = "llama"
    task = "clm"

    def config_from_hf(self, hf: dict[str, Any]) -> TransformerConfig:
        unsupported_if(hf, "Llama", "hidden_act", "silu")
        unsupported_if(hf, "Llama", "rope_scaling", None)
        rope = hf.get("rope_parameters") or {}
        unsupported_if(rope, "Llama", "rope_type", "default")
        attention_bias, mlp_bias = hf.get("attention_bias", False), hf.get("mlp_bias", False)
        require(
            attention_bias == mlp_bias,
            f"Llama with attention_bias={attention_bias} but mlp_bias={mlp_bias} "
            "(the core has one bias switch)",
        )
        n_heads = hf["num_attention_heads"]
        return TransformerConfig(
            vocab_size=hf["vocab_size"],
            arch="decoder",
            d_model=hf["hidden_size"],
            n_layers=hf["num_hidden_layers"],
            n_heads=n_heads,
            n_kv_heads=hf.get("num_key_value_heads") or n_heads,
            d_head=hf.get("head_dim") or hf["hidden_size"] // n_heads,
            d_ff=hf["intermediate_size"],
            max_seq_len=hf.get("max_position_embeddings", 2048),
            position="rope",
            rope_theta=rope.get("rope_theta", hf.get("rope_theta", 10000.0)),
            ffn="swiglu",
            norm="rms",
            norm_eps=hf.get("rms_norm_eps", 1e-6),
            norm_position="pre",
            bias=attention_bias,
            dropout=hf.get("attention_dropout", 0.0),
            tie_embeddings=hf.get("tie_word_embeddings", False),
        )

    def weights_from_hf(self, hf: Weights, cfg: TransformerConfig) -> Weights:
        m = PREFIX
        out = {
            "embed.weight": pad_rows(hf[f"{m}embed_tokens.weight"], cfg),
            "decoder.final_norm.weight": hf[f"{m}norm.weight"],
        }
        head = out["embed.weight"] if cfg.tie_embeddings else hf["lm_head.weight"]
        out["head.weight"] = pad_rows(head, cfg)
        suffixes = ("weight", "bias") if cfg.bias else ("weight",)
        for i in range(cfg.n_layers):
            src, dst = f"{m}layers.{i}", f"decoder.blocks.{i}"
            for s in suffixes:
                attn = [f"{src}.self_attn.{p}_proj.{s}" for p in "qkv"]
                out[f"{dst}.attn.qkv.{s}"] = fused(hf, attn)
                mlp = [f"{src}.mlp.{p}_proj.{s}" for p in ("gate", "up")]
                out[f"{dst}.ffn.w_in.{s}"] = fused(hf, mlp)
                for ours, theirs in LAYER:
                    out[f"{dst}.{ours}.{s}"] = hf[f"{src}.{theirs}.{s}"]
            for ours, theirs in NORMS:
                out[f"{dst}.{ours}.weight"] = hf[f"{src}.{theirs}.weight"]
        return out

    def exports(self, cfg: TransformerConfig) -> bool:
        return cfg.arch == "decoder" and cfg.position == "rope"

    def config_to_hf(self, cfg: TransformerConfig) -> dict[str, Any]:
        require(cfg.norm == "rms", f"Llama with norm={cfg.norm} (Llama has RMSNorm)")
        require(cfg.ffn == "swiglu", f"Llama with ffn={cfg.ffn} (Llama has SwiGLU)")
        require(cfg.norm_position == "pre" and cfg.final_norm, "Llama with post-norm blocks")
        require(not cfg.embedding_norm, "Llama with embedding_norm")
        require(cfg.attn_scale is None, f"Llama with attn_scale={cfg.attn_scale}")
        return {
            "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.d_model,
            "intermediate_size": cfg.d_ff,
            "num_hidden_layers": cfg.n_layers,
            "num_attention_heads": cfg.n_heads,
            "num_key_value_heads": cfg.n_kv_heads,
            "head_dim": cfg.d_head,
            "hidden_act": "silu",
            "max_position_embeddings": cfg.max_seq_len,
            "rope_theta": cfg.rope_theta,
            "rms_norm_eps": cfg.norm_eps,
            "attention_bias": cfg.bias,
            "mlp_bias": cfg.bias,
            "attention_dropout": cfg.dropout,
            "tie_word_embeddings": cfg.tie_embeddings,
        }

    def weights_to_hf(self, ours: Weights, cfg: TransformerConfig) -> Weights:
        m = PREFIX
        out = {
            f"{m}embed_tokens.weight": strip_rows(ours["embed.weight"], cfg),
            f"{m}norm.weight": ours["decoder.final_norm.weight"],
        }
        if not cfg.tie_embeddings:
            out["lm_head.weight"] = strip_rows(ours["head.weight"], cfg)
        q_dim, kv_dim = cfg.n_heads * cfg.d_head, cfg.n_kv_heads * cfg.d_head
        suffixes = ("weight", "bias") if cfg.bias else ("weight",)
        for i in range(cfg.n_layers):
            src, dst = f"decoder.blocks.{i}", f"{m}layers.{i}"
            for s in suffixes:
                qkv = unfuse(ours[f"{src}.attn.qkv.{s}"], [q_dim, kv_dim, kv_dim])
                for p, t in zip("qkv", qkv, strict=True):
                    out[f"{dst}.self_attn.{p}_proj.{s}"] = t
                gate, up = unfuse(ours[f"{src}.ffn.w_in.{s}"], [cfg.d_ff, cfg.d_ff])
                out[f"{dst}.mlp.gate_proj.{s}"], out[f"{dst}.mlp.up_proj.{s}"] = gate, up
                for name, theirs in LAYER:
                    out[f"{dst}.{theirs}.{s}"] = ours[f"{src}.{name}.{s}"]
            for name, theirs in NORMS:
                out[f"{dst}.{theirs}.weight"] = ours[f"{src}.{name}.weight"]
        return out
