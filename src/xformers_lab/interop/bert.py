"""BERT (`BertForMaskedLM`) <-> the core's post-norm encoder with an embedding norm and MLM head.

The core has no token-type (segment) embeddings: row 0 of BERT's `token_type_embeddings` is
folded into the position table, which is exact for single-segment inputs (token_type_ids all 0,
how our fill-mask and fine-tuning feed the model). Export writes zero token-type embeddings, so
the exported model computes the same for every token type.
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

ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
}
"""BERT's `hidden_act` values the core has, and their names here."""
EXPORT_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}
PREFIX = "bert."
EMB = f"{PREFIX}embeddings."
HEAD = "cls.predictions."
LAYER = (
    ("attn.out", "attention.output.dense"),
    ("attn_norm", "attention.output.LayerNorm"),
    ("ffn.w_in", "intermediate.dense"),
    ("ffn.w_out", "output.dense"),
    ("ffn_norm", "output.LayerNorm"),
)
"""(ours, BERT's) modules inside one layer with a weight and a bias each; q, k, v are fused."""
MLM = (("head.dense", "transform.dense"), ("head.norm", "transform.LayerNorm"))
TYPE_VOCAB_SIZE = 2


class BertAdapter(HFAdapter):
    architecture = "BertForMaskedLM"
    model_type = "bert"
    task = "mlm"

    def config_from_hf(self, hf: dict[str, Any]) -> TransformerConfig:
        unsupported_if(hf, "BERT", "position_embedding_type", "absolute")
        unsupported_if(hf, "BERT", "is_decoder", False)
        unsupported_if(hf, "BERT", "add_cross_attention", False)
        activation = hf.get("hidden_act", "gelu")
        require(activation in ACTIVATIONS, f"BERT with hidden_act={activation!r}")
        return TransformerConfig(
            vocab_size=hf["vocab_size"],
            arch="encoder",
            d_model=hf["hidden_size"],
            n_layers=hf["num_hidden_layers"],
            n_heads=hf["num_attention_heads"],
            d_ff=hf["intermediate_size"],
            max_seq_len=hf.get("max_position_embeddings", 512),
            position="learned",
            ffn=ACTIVATIONS[activation],
            norm="layer",
            norm_eps=hf.get("layer_norm_eps", 1e-12),
            norm_position="post",
            embedding_norm=True,
            bias=True,
            dropout=hf.get("hidden_dropout_prob", 0.0),
            tie_embeddings=hf.get("tie_word_embeddings", True),
        )

    def weights_from_hf(self, hf: Weights, cfg: TransformerConfig) -> Weights:
        positions = hf[f"{EMB}position_embeddings.weight"]
        token_type = hf.get(f"{EMB}token_type_embeddings.weight")
        if token_type is not None:  # single-segment inputs: type 0 everywhere
            positions = positions + token_type[0]
        out = {
            "embed.weight": pad_rows(hf[f"{EMB}word_embeddings.weight"], cfg),
            "encoder.positions.table.weight": positions,
            "encoder.embedding_norm.weight": hf[f"{EMB}LayerNorm.weight"],
            "encoder.embedding_norm.bias": hf[f"{EMB}LayerNorm.bias"],
            "head.bias": pad_rows(hf[f"{HEAD}bias"], cfg),
        }
        decoder = out["embed.weight"] if cfg.tie_embeddings else hf[f"{HEAD}decoder.weight"]
        out["head.decoder.weight"] = pad_rows(decoder, cfg)
        for ours, theirs in MLM:
            for s in ("weight", "bias"):
                out[f"{ours}.{s}"] = hf[f"{HEAD}{theirs}.{s}"]
        for i in range(cfg.n_layers):
            src, dst = f"{PREFIX}encoder.layer.{i}", f"encoder.blocks.{i}"
            for s in ("weight", "bias"):
                qkv = [f"{src}.attention.self.{p}.{s}" for p in ("query", "key", "value")]
                out[f"{dst}.attn.qkv.{s}"] = fused(hf, qkv)
                for ours, theirs in LAYER:
                    out[f"{dst}.{ours}.{s}"] = hf[f"{src}.{theirs}.{s}"]
        return out

    def exports(self, cfg: TransformerConfig) -> bool:
        return cfg.arch == "encoder" and cfg.position == "learned"

    def config_to_hf(self, cfg: TransformerConfig) -> dict[str, Any]:
        require(cfg.norm == "layer", f"BERT with norm={cfg.norm} (BERT has LayerNorm)")
        require(
            cfg.norm_position == "post" and cfg.embedding_norm and not cfg.final_norm,
            "BERT from a pre-norm encoder (BERT is post-norm with an embedding norm: "
            "model.norm_position=post model.embedding_norm=true)",
        )
        require(cfg.bias, "BERT without biases")
        require(cfg.attn_scale is None, f"BERT with attn_scale={cfg.attn_scale}")
        require(cfg.n_kv_heads == cfg.n_heads, "BERT with grouped-query attention")
        require(cfg.d_head * cfg.n_heads == cfg.d_model, "BERT with d_head * n_heads != d_model")
        require(cfg.ffn in EXPORT_ACTIVATIONS, f"BERT with ffn={cfg.ffn}")
        return {
            "vocab_size": cfg.vocab_size,
            "hidden_size": cfg.d_model,
            "num_hidden_layers": cfg.n_layers,
            "num_attention_heads": cfg.n_heads,
            "intermediate_size": cfg.d_ff,
            "hidden_act": EXPORT_ACTIVATIONS[cfg.ffn],
            "max_position_embeddings": cfg.max_seq_len,
            "type_vocab_size": TYPE_VOCAB_SIZE,
            "layer_norm_eps": cfg.norm_eps,
            "hidden_dropout_prob": cfg.dropout,
            "attention_probs_dropout_prob": cfg.dropout,
            "position_embedding_type": "absolute",
            "tie_word_embeddings": cfg.tie_embeddings,
        }

    def weights_to_hf(self, ours: Weights, cfg: TransformerConfig) -> Weights:
        positions = ours["encoder.positions.table.weight"]
        out = {
            f"{EMB}word_embeddings.weight": strip_rows(ours["embed.weight"], cfg),
            f"{EMB}position_embeddings.weight": positions,
            f"{EMB}token_type_embeddings.weight": positions.new_zeros(TYPE_VOCAB_SIZE, cfg.d_model),
            f"{EMB}LayerNorm.weight": ours["encoder.embedding_norm.weight"],
            f"{EMB}LayerNorm.bias": ours["encoder.embedding_norm.bias"],
            f"{HEAD}bias": strip_rows(ours["head.bias"], cfg),
        }
        if not cfg.tie_embeddings:
            out[f"{HEAD}decoder.weight"] = strip_rows(ours["head.decoder.weight"], cfg)
        for name, theirs in MLM:
            for s in ("weight", "bias"):
                out[f"{HEAD}{theirs}.{s}"] = ours[f"{name}.{s}"]
        d = cfg.d_model
        for i in range(cfg.n_layers):
            src, dst = f"encoder.blocks.{i}", f"{PREFIX}encoder.layer.{i}"
            for s in ("weight", "bias"):
                qkv = unfuse(ours[f"{src}.attn.qkv.{s}"], [d, d, d])
                for p, t in zip(("query", "key", "value"), qkv, strict=True):
                    out[f"{dst}.attention.self.{p}.{s}"] = t
                for name, theirs in LAYER:
                    out[f"{dst}.{theirs}.{s}"] = ours[f"{src}.{name}.{s}"]
        return out
