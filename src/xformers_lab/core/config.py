"""TransformerConfig: the one typed description every model is built and rebuilt from."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from xformers_lab.core.layers import FFN_ACTIVATIONS, NORMS
from xformers_lab.core.positions import POSITIONS

ARCHS = ("decoder", "encoder", "encoder_decoder")
NORM_POSITIONS = ("pre", "post")


@dataclass(frozen=True, kw_only=True)
class TransformerConfig:
    """Architecture of one model. Saved in every checkpoint; a model rebuilds from it alone.

    Derived values (`n_kv_heads`, `d_head`, `d_ff`, `final_norm`) are filled in `__post_init__`,
    so `dataclasses.asdict` of a built config round-trips exactly.
    """

    vocab_size: int
    """Real vocabulary size, special tokens included (the embedding is padded beyond it)."""
    arch: str = "decoder"
    """`decoder` (GPT, causal), `encoder` (BERT, bidirectional) or `encoder_decoder` (T5)."""
    d_model: int = 256
    """Width of the residual stream."""
    n_layers: int = 4
    """Blocks in the stack (the encoder's, for encoder-decoders)."""
    n_decoder_layers: int | None = None
    """Decoder blocks of an encoder-decoder; defaults to `n_layers`."""
    n_heads: int = 4
    """Query heads."""
    n_kv_heads: int | None = None
    """Key/value heads: `n_heads` (MHA, the default), fewer (GQA) or 1 (MQA)."""
    d_head: int | None = None
    """Width of one head; defaults to `d_model // n_heads`."""
    attn_scale: float | None = None
    """Factor on the q·k scores; None is 1/sqrt(d_head). T5 uses 1.0 (its init absorbs it)."""
    d_ff: int | None = None
    """Hidden width of the feed-forward; defaults to 4*d_model, or ~8/3*d_model for gated ones."""
    max_seq_len: int = 1024
    """Longest sequence the model accepts (the size of learned position tables)."""
    position: str = "learned"
    """Position scheme: one of `POSITIONS` (learned, sinusoidal, rope, alibi, ...)."""
    rope_theta: float = 10000.0
    """RoPE base frequency."""
    rel_buckets: int = 32
    """`position: t5`: relative-position buckets (split between directions when bidirectional)."""
    rel_max_distance: int = 128
    """`position: t5`: distance from which every relative position shares the last bucket."""
    ffn: str = "gelu"
    """Feed-forward activation: one of `FFN_ACTIVATIONS` (relu, gelu, gelu_tanh, swiglu, geglu)."""
    norm: str = "layer"
    """Normalisation: `layer` (LayerNorm) or `rms` (RMSNorm)."""
    norm_eps: float = 1e-5
    """Epsilon of every norm."""
    norm_position: str = "pre"
    """`pre` (GPT-2 and later: norm inside the residual branch) or `post` (original BERT)."""
    final_norm: bool | None = None
    """Norm after the last block; defaults to True for pre-norm, False for post-norm."""
    embedding_norm: bool = False
    """Norm right after the embeddings (original BERT)."""
    bias: bool = True
    """Biases in linear layers and LayerNorms."""
    dropout: float = 0.0
    """Dropout on embeddings, attention probabilities and residual branches."""
    tie_embeddings: bool = True
    """LM head shares the token embedding matrix."""
    scale_tied_head: bool = False
    """Multiply hidden states by d_model ** -0.5 before the tied head (T5 v1.0, Mesh TF)."""
    init_std: float = 0.02
    """Std of the normal init; residual projections get init_std / sqrt(2 * n_layers) (GPT-2)."""
    pad_vocab_to: int = 64
    """Embedding rows are padded to a multiple of this (faster matmuls); padded rows never win."""
    activation_checkpointing: bool = False
    """Recompute each block's activations in the backward pass instead of keeping them: about a
    third more compute for activation memory of one block per stack (training only)."""

    def __post_init__(self) -> None:
        _require(self.arch in ARCHS, f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len", "pad_vocab_to"):
            _require(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        _require_choice("position", self.position, POSITIONS)
        _require_choice("ffn", self.ffn, FFN_ACTIVATIONS)
        _require_choice("norm", self.norm, NORMS)
        _require_choice("norm_position", self.norm_position, NORM_POSITIONS)
        _require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        if self.attn_scale is not None:
            _require(self.attn_scale > 0, f"attn_scale must be positive, got {self.attn_scale}")
        _require(self.rel_buckets >= 4, f"rel_buckets must be >= 4, got {self.rel_buckets}")
        _require(
            self.rel_max_distance > self.rel_buckets // 2,
            f"rel_max_distance ({self.rel_max_distance}) must exceed rel_buckets // 2"
            f" ({self.rel_buckets // 2})",
        )
        _require(
            self.tie_embeddings or not self.scale_tied_head,
            "scale_tied_head needs tie_embeddings=true",
        )
        if self.d_head is None:
            _require(
                self.d_model % self.n_heads == 0,
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}),"
                " or set d_head explicitly",
            )
        n_kv_heads = self.n_heads if self.n_kv_heads is None else self.n_kv_heads
        _require(
            n_kv_heads > 0 and self.n_heads % n_kv_heads == 0,
            f"n_heads ({self.n_heads}) must be divisible by n_kv_heads ({n_kv_heads})",
        )
        d_head = self.d_model // self.n_heads if self.d_head is None else self.d_head
        _require(d_head > 0, f"d_head must be positive, got {d_head}")
        if self.position == "rope":
            _require(d_head % 2 == 0, f"rope needs an even d_head, got {d_head}")
        if self.position == "sinusoidal":
            _require(self.d_model % 2 == 0, f"sinusoidal needs an even d_model, got {self.d_model}")
        if self.n_decoder_layers is not None:
            _require(self.n_decoder_layers > 0, "n_decoder_layers must be positive")
        object.__setattr__(self, "n_kv_heads", n_kv_heads)
        object.__setattr__(self, "d_head", d_head)
        object.__setattr__(self, "d_ff", self.d_ff or _default_d_ff(self.d_model, self.ffn))
        _require(self.d_ff > 0, f"d_ff must be positive, got {self.d_ff}")
        if self.final_norm is None:
            object.__setattr__(self, "final_norm", self.norm_position == "pre")

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding and columns of the logits."""
        return math.ceil(self.vocab_size / self.pad_vocab_to) * self.pad_vocab_to

    @property
    def decoder_layers(self) -> int:
        """Blocks in the decoder stack of an encoder-decoder."""
        return self.n_decoder_layers or self.n_layers

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (checkpoint-safe) that `TransformerConfig(**d)` rebuilds exactly."""
        return dataclasses.asdict(self)


def _default_d_ff(d_model: int, ffn: str) -> int:
    if FFN_ACTIVATIONS[ffn].gated:  # keep parameters ~equal to a 4x plain FFN (Shazeer 2002.05202)
        return 64 * math.ceil(8 * d_model / 3 / 64)
    return 4 * d_model


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _require_choice(name: str, value: str, registry: dict[str, Any]) -> None:
    _require(value in registry, f"unknown {name} {value!r}; choose one of: {', '.join(registry)}")
