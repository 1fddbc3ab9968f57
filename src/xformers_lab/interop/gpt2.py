"""GPT-2 (`GPT2LMHeadModel`) <-> the core's learned-position, pre-norm LayerNorm decoder.

GPT-2 stores its projections as `Conv1D` (weights are (in, out)), so every matrix is transposed
on the way in and out; `c_attn` is already our fused [q | k | v].
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from xformers_lab.core import TransformerConfig
from xformers_lab.interop.adapter import (
    HFAdapter,
    Weights,
    pad_rows,
    require,
    strip_rows,
    unsupported_if,
)

ACTIVATIONS = {
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu": "gelu",
    "relu": "relu",
}
"""GPT-2's `activation_function` values the core has, and their names here."""
EXPORT_ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
PREFIX = "transformer."


class GPT2Adapter(HFAdapter):
    architecture = "GPT2LMHeadModel"
    model_type = "gpt2"
    task = "clm"

    def config_from_hf(self, hf: dict[str, Any]) -> TransformerConfig:
        for key, supported in (
            ("scale_attn_weights", True),
            ("scale_attn_by_inverse_layer_idx", False),
            ("add_cross_attention", False),
        ):
            unsupported_if(hf, "GPT-2", key, supported)
        activation = hf.get("activation_function", "gelu_new")
        require(activation in ACTIVATIONS, f"GPT-2 with activation_function={activation!r}")
        return TransformerConfig(
            vocab_size=hf["vocab_size"],
            arch="decoder",
            d_model=hf["n_embd"],
            n_layers=hf["n_layer"],
            n_heads=hf["n_head"],
            d_ff=hf.get("n_inner") or 4 * hf["n_embd"],
            max_seq_len=hf["n_positions"],
            position="learned",
            ffn=ACTIVATIONS[activation],
            norm="layer",
            norm_eps=hf.get("layer_norm_epsilon", 1e-5),
            norm_position="pre",
            bias=True,
            dropout=hf.get("resid_pdrop", 0.0),
            tie_embeddings=hf.get("tie_word_embeddings", True),
        )

    def weights_from_hf(self, hf: Weights, cfg: TransformerConfig) -> Weights:
        # the hub's gpt2 checkpoints were saved from GPT2Model: no `transformer.` prefix
        hf = {k if k.startswith(("lm_head.", PREFIX)) else PREFIX + k: v for k, v in hf.items()}
        t = PREFIX
        out = {
            "embed.weight": pad_rows(hf[f"{t}wte.weight"], cfg),
            "decoder.positions.table.weight": hf[f"{t}wpe.weight"],
            "decoder.final_norm.weight": hf[f"{t}ln_f.weight"],
            "decoder.final_norm.bias": hf[f"{t}ln_f.bias"],
        }
        head = out["embed.weight"] if cfg.tie_embeddings else hf["lm_head.weight"]
        out["head.weight"] = pad_rows(head, cfg)
        for i in range(cfg.n_layers):
            src, dst = f"{t}h.{i}", f"decoder.blocks.{i}"
            for ours, theirs in LAYER:
                out[f"{dst}.{ours}.weight"] = _maybe_t(hf[f"{src}.{theirs}.weight"], theirs)
                out[f"{dst}.{ours}.bias"] = hf[f"{src}.{theirs}.bias"]
        return out

    def exports(self, cfg: TransformerConfig) -> bool:
        return cfg.arch == "decoder" and cfg.position == "learned"

    def config_to_hf(self, cfg: TransformerConfig) -> dict[str, Any]:
        require(cfg.norm == "layer", f"GPT-2 with norm={cfg.norm} (GPT-2 has LayerNorm)")
        require(cfg.norm_position == "pre" and cfg.final_norm, "GPT-2 with post-norm blocks")
        require(not cfg.embedding_norm, "GPT-2 with embedding_norm")
        require(cfg.bias, "GPT-2 without biases")
        require(cfg.attn_scale is None, f"GPT-2 with attn_scale={cfg.attn_scale}")
        require(cfg.n_kv_heads == cfg.n_heads, "GPT-2 with grouped-query attention")
        require(cfg.d_head * cfg.n_heads == cfg.d_model, "GPT-2 with d_head * n_heads != d_model")
        require(cfg.ffn in EXPORT_ACTIVATIONS, f"GPT-2 with ffn={cfg.ffn}")
        return {
            "vocab_size": cfg.vocab_size,
            "n_embd": cfg.d_model,
            "n_layer": cfg.n_layers,
            "n_head": cfg.n_heads,
            "n_inner": cfg.d_ff,
            "n_positions": cfg.max_seq_len,
            "activation_function": EXPORT_ACTIVATIONS[cfg.ffn],
            "layer_norm_epsilon": cfg.norm_eps,
            "resid_pdrop": cfg.dropout,
            "embd_pdrop": cfg.dropout,
            "attn_pdrop": cfg.dropout,
            "tie_word_embeddings": cfg.tie_embeddings,
        }

    def weights_to_hf(self, ours: Weights, cfg: TransformerConfig) -> Weights:
        t = PREFIX
        out = {
            f"{t}wte.weight": strip_rows(ours["embed.weight"], cfg),
            f"{t}wpe.weight": ours["decoder.positions.table.weight"],
            f"{t}ln_f.weight": ours["decoder.final_norm.weight"],
            f"{t}ln_f.bias": ours["decoder.final_norm.bias"],
        }
        if not cfg.tie_embeddings:
            out["lm_head.weight"] = strip_rows(ours["head.weight"], cfg)
        for i in range(cfg.n_layers):
            src, dst = f"decoder.blocks.{i}", f"{t}h.{i}"
            for name, theirs in LAYER:
                out[f"{dst}.{theirs}.weight"] = _maybe_t(ours[f"{src}.{name}.weight"], theirs)
                out[f"{dst}.{theirs}.bias"] = ours[f"{src}.{name}.bias"]
        return out


LAYER = (
    ("attn_norm", "ln_1"),
    ("attn.qkv", "attn.c_attn"),
    ("attn.out", "attn.c_proj"),
    ("ffn_norm", "ln_2"),
    ("ffn.w_in", "mlp.c_fc"),
    ("ffn.w_out", "mlp.c_proj"),
)
"""(ours, GPT-2's) module names inside one block; each has a weight and a bias."""


def _maybe_t(weight: Tensor, theirs: str) -> Tensor:
    """Conv1D matrices are stored (in, out): transposed against nn.Linear; norms are vectors."""
    return weight.t() if theirs.startswith(("attn.", "mlp.")) else weight
