"""Parameter counts, training FLOPs per token and training memory, computed from a
`TransformerConfig` alone (no model is allocated).

FLOPs follow the convention of Kaplan et al. (arXiv 2001.08361), PaLM (arXiv 2204.02311, app. B)
and nanoGPT's `estimate_mfu`: a training step costs 6 FLOPs per parameter a token passes through
(2 forward, 4 backward) plus 12 * n_layers * (n_heads * d_head) * keys for attention's
scores and weighted sum, with no discount for causal masking. The parameters counted are the
non-embedding ones (`ParamCounts.non_embedding`: embedding lookups cost no FLOPs) plus the
output head's d_model x vocab matrix at every position the head runs on, tied or not (nanoGPT
counts it through its tied embedding). Each stack is counted on its own length: an
encoder-decoder's encoder on the input, its decoder on the targets (cross-attention keys are
the input; the cross-attention key/value projections run on the input), and a masked LM's head
on the masked positions only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xformers_lab.core import TransformerConfig
from xformers_lab.core.layers import FFN_ACTIVATIONS
from xformers_lab.core.linear_cross_entropy import ACCELERATOR_CHUNK_ELEMENTS

PRECISION_BYTES = {
    # precision: (bytes per weight/grad/optimizer-state element, bytes per activation element)
    "32-true": (4, 4),
    "bf16-mixed": (4, 2),
    "16-mixed": (4, 2),
    "bf16-true": (2, 2),
}


@dataclass(frozen=True)
class ParamCounts:
    """Unique parameters of a model, split as Kaplan et al. split them."""

    embedding: int
    """Token embedding, learned position tables and an untied output head (the unembedding)."""
    non_embedding: int
    """Everything else: blocks, norms, relative-bias tables, the MLM head's transform and bias."""

    @property
    def total(self) -> int:
        return self.embedding + self.non_embedding


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training step holds at its peak, by kind."""

    weights: int
    grads: int
    optimizer: int
    """AdamW's two moment estimates per parameter."""
    activations: int
    """Tensors saved for the backward pass and the head's share: the logits and their gradient
    (masked LM), or the fused loss's gradients and one chunk of logits (causal LM, span)."""

    @property
    def total(self) -> int:
        return self.weights + self.grads + self.optimizer + self.activations


@dataclass(frozen=True)
class RowShape:
    """What one training row of a task feeds the model."""

    seq_len: int
    """Input tokens (the encoder's, for an encoder-decoder)."""
    target_len: int = 0
    """Decoder tokens of an encoder-decoder."""
    head_positions: float | None = None
    """Positions the output head runs on; None: every position of the stack feeding it."""


def count_params(cfg: TransformerConfig) -> ParamCounts:
    """Parameters of `build_model(cfg)`, by arithmetic (a tied head counts once)."""
    vocab_matrix = cfg.padded_vocab_size * cfg.d_model
    embedding = vocab_matrix + (0 if cfg.tie_embeddings else vocab_matrix)
    non_embedding = _stack_params(cfg, cfg.n_layers, cross=False)
    if cfg.position == "learned":
        embedding += _n_stacks(cfg) * cfg.max_seq_len * cfg.d_model
    if cfg.arch == "encoder_decoder":
        non_embedding += _stack_params(cfg, cfg.decoder_layers, cross=True)
    if cfg.arch == "encoder":
        non_embedding += _mlm_transform_params(cfg)
    return ParamCounts(embedding=embedding, non_embedding=non_embedding)


def flops_per_token(
    cfg: TransformerConfig,
    seq_len: int,
    target_len: int = 0,
    head_positions: float | None = None,
) -> float:
    """Training FLOPs (forward + backward) per token, tokens counted as the tasks count them.

    Args:
        seq_len: tokens per row (the encoder's input for an encoder-decoder).
        target_len: decoder tokens per row of an encoder-decoder (tokens are seq_len + target_len).
        head_positions: positions per row the output head runs on; default every position of
            the stack that feeds it. A masked LM trains its head on the masked positions only.
    """
    attn_width = 12 * cfg.n_heads * cfg.d_head  # x n_layers x keys per query token
    first = _stack_params(cfg, cfg.n_layers, cross=False)
    flops = seq_len * (6 * first + attn_width * cfg.n_layers * seq_len)
    head_len = target_len if cfg.arch == "encoder_decoder" else seq_len
    head = head_len if head_positions is None else head_positions
    if cfg.arch == "encoder":
        head_params = cfg.padded_vocab_size * cfg.d_model + _mlm_transform_params(cfg)
    else:  # the fused head and loss skip the padding rows
        head_params = cfg.vocab_size * cfg.d_model
    if cfg.arch == "encoder_decoder":
        decoder = _stack_params(cfg, cfg.decoder_layers, cross=True)
        cross_kv = cfg.decoder_layers * _linear(cfg, cfg.d_model, 2 * cfg.n_kv_heads * cfg.d_head)
        flops += 6 * cross_kv * seq_len  # keys and values of the encoder output, per layer
        keys = target_len + seq_len  # self-attention over the targets, cross over the input
        flops += target_len * (6 * (decoder - cross_kv) + attn_width * cfg.decoder_layers * keys)
    flops += 6 * head_params * head
    return flops / (seq_len + target_len)


def training_memory(
    cfg: TransformerConfig,
    *,
    batch_size: int,
    seq_len: int,
    target_len: int = 0,
    head_positions: float | None = None,
    precision: str = "32-true",
) -> MemoryEstimate:
    """Approximate peak memory of one AdamW training step.

    Weights, gradients and AdamW's two moments take the parameter dtype (fp32 in the mixed
    precisions, whose matmuls run on low-precision copies). Activations count, per token and
    layer, the tensors autograd keeps for the backward pass (norm inputs, the fused QKV and
    feed-forward projections, attention outputs); fused SDPA kernels keep no seq_len x seq_len
    scores, so none are counted. With `cfg.activation_checkpointing`, a layer keeps only its
    input, plus one layer's tensors while it is recomputed. A masked LM's head counts its logits
    twice (log-softmax output and its gradient) in fp32 at `head_positions`; the LM head of a
    decoder or encoder-decoder runs fused with its loss, which keeps the fp32 gradients of its
    input and weight and one chunk of logits instead.
    """
    if precision not in PRECISION_BYTES:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_BYTES)}: {precision!r}")
    state_bytes, act_bytes = PRECISION_BYTES[precision]
    n_params = count_params(cfg).total
    encoder_layer = _layer_activations(cfg, cross=False)
    elements = seq_len * (_kept(cfg, cfg.n_layers, encoder_layer) + cfg.d_model)
    if cfg.arch == "encoder_decoder":
        decoder_layer = _layer_activations(cfg, cross=True) * target_len + 2 * cfg.n_kv_heads * (
            cfg.d_head * seq_len
        )
        if cfg.activation_checkpointing:  # the layer inputs, and one layer recomputed
            elements += cfg.decoder_layers * target_len * cfg.d_model + decoder_layer
        else:
            elements += cfg.decoder_layers * decoder_layer
        elements += target_len * cfg.d_model
    head_len = target_len if cfg.arch == "encoder_decoder" else seq_len
    if cfg.arch != "encoder" and head_positions is None:  # core/linear_cross_entropy.py
        head_bytes = 4 * cfg.d_model * head_len
        chunk = min(ACCELERATOR_CHUNK_ELEMENTS, batch_size * head_len * cfg.vocab_size)  # GPU
        fixed_bytes = 4 * (cfg.vocab_size * cfg.d_model + chunk)
    else:
        head = head_len if head_positions is None else head_positions
        head_bytes, fixed_bytes = 2 * 4 * cfg.padded_vocab_size * head, 0
    return MemoryEstimate(
        weights=state_bytes * n_params,
        grads=state_bytes * n_params,
        optimizer=2 * state_bytes * n_params,
        activations=math.ceil(batch_size * (act_bytes * elements + head_bytes)) + fixed_bytes,
    )


def _kept(cfg: TransformerConfig, n_layers: int, per_layer: int) -> int:
    """Activation elements per token that a stack of `n_layers` keeps for the backward pass."""
    if cfg.activation_checkpointing:
        return n_layers * cfg.d_model + per_layer
    return n_layers * per_layer


def _n_stacks(cfg: TransformerConfig) -> int:
    return 2 if cfg.arch == "encoder_decoder" else 1


def _linear(cfg: TransformerConfig, n_in: int, n_out: int) -> int:
    return n_in * n_out + (n_out if cfg.bias else 0)


def _norm(cfg: TransformerConfig) -> int:
    return cfg.d_model * (2 if cfg.norm == "layer" and cfg.bias else 1)


def _stack_params(cfg: TransformerConfig, n_layers: int, cross: bool) -> int:
    """Blocks, norms and position tables of one stack, the learned absolute table excepted."""
    d, q_dim, kv_dim = cfg.d_model, cfg.n_heads * cfg.d_head, cfg.n_kv_heads * cfg.d_head
    attention = _linear(cfg, d, q_dim + 2 * kv_dim) + _linear(cfg, q_dim, d)
    gated = FFN_ACTIVATIONS[cfg.ffn].gated
    ffn = _linear(cfg, d, (2 if gated else 1) * cfg.d_ff) + _linear(cfg, cfg.d_ff, d)
    block = 2 * _norm(cfg) + attention + ffn
    if cross:
        block += _norm(cfg) + _linear(cfg, d, q_dim) + _linear(cfg, d, 2 * kv_dim)
        block += _linear(cfg, q_dim, d)
    stack = n_layers * block
    stack += _norm(cfg) * (int(cfg.embedding_norm) + int(bool(cfg.final_norm)))
    if cfg.position == "t5":
        stack += cfg.rel_buckets * cfg.n_heads
    return stack


def _mlm_transform_params(cfg: TransformerConfig) -> int:
    """BERT's head before its vocabulary matrix: dense, norm, and the output bias."""
    return _linear(cfg, cfg.d_model, cfg.d_model) + _norm(cfg) + cfg.padded_vocab_size


def _layer_activations(cfg: TransformerConfig, cross: bool) -> int:
    """Elements one block keeps for backward, per token."""
    d, q_dim, kv_dim = cfg.d_model, cfg.n_heads * cfg.d_head, cfg.n_kv_heads * cfg.d_head
    attention = d + (q_dim + 2 * kv_dim) + 2 * q_dim  # norm input, qkv, output, merged heads
    gated = FFN_ACTIVATIONS[cfg.ffn].gated
    ffn = d + (2 if gated else 1) * cfg.d_ff + (2 if gated else 1) * cfg.d_ff
    total = attention + ffn
    if cross:
        total += d + 3 * q_dim  # norm input, queries, output, merged heads
    return total
