"""Estimates from the config alone agree with real models: parameters, FLOPs, activations."""

from __future__ import annotations

import functools
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from xformers_lab.cli import compose_config
from xformers_lab.core import TransformerConfig, build_model, count_parameters
from xformers_lab.core.layers import FFN_ACTIVATIONS, NORMS
from xformers_lab.core.linear_cross_entropy import CHUNK_ELEMENTS
from xformers_lab.core.positions import POSITIONS
from xformers_lab.estimates import count_params, flops_per_token, training_memory
from xformers_lab.settings import resolve_settings

PRESETS = {"gpt": "clm", "llama": "clm", "bert": "mlm", "t5": "span"}
VOCAB = 363  # the byte tokenizer's: padded to 384, so padding is exercised


@functools.cache
def preset_config(preset: str) -> TransformerConfig:
    """The preset as the command line composes and validates it, at a tiny size."""
    overrides = [f"model={preset}", f"task={PRESETS[preset]}", "model.n_layers=2"]
    overrides += ["model.d_model=64", "model.n_heads=4", "data.seq_len=32"]
    if preset == "t5":
        overrides.append("model.n_decoder_layers=3")
    return resolve_settings(compose_config("train", overrides)).model_config(VOCAB)


def embedding_params(model: torch.nn.Module) -> int:
    """Token embedding, learned position tables, an untied head matrix: counted from the model."""
    names = {
        name
        for name, _ in model.named_parameters()
        if name == "embed.weight"
        or (name.endswith("positions.table.weight") and model.config.position == "learned")
        or name in ("head.weight", "head.decoder.weight")
    }
    return sum(p.numel() for name, p in model.named_parameters() if name in names)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_parameter_counts_match_the_instantiated_preset(preset: str) -> None:
    cfg = preset_config(preset)
    model = build_model(cfg)
    counts = count_params(cfg)
    assert counts.total == count_parameters(model)
    assert counts.embedding == embedding_params(model)
    assert counts.non_embedding > 0


def part_combinations() -> list[tuple[str, ...]]:
    """Every arch x position x ffn, with norm, bias and tying cycled through theirs."""
    others = itertools.cycle(itertools.product(NORMS, [True, False], [True, False]))
    parts = itertools.product(["decoder", "encoder", "encoder_decoder"], POSITIONS, FFN_ACTIVATIONS)
    return [(*combo, *other) for combo, other in zip(parts, others, strict=False)]


@pytest.mark.parametrize(("arch", "position", "ffn", "norm", "bias", "tie"), part_combinations())
def test_parameter_counts_match_every_part_combination(
    arch: str, position: str, ffn: str, norm: str, bias: bool, tie: bool
) -> None:
    cfg = TransformerConfig(
        vocab_size=70, arch=arch, d_model=32, n_heads=4, n_kv_heads=2, n_layers=2,
        n_decoder_layers=3, max_seq_len=16, position=position, ffn=ffn, norm=norm, bias=bias,
        tie_embeddings=tie, embedding_norm=bias, norm_position="pre" if tie else "post",
    )  # fmt: skip
    assert count_params(cfg).total == count_parameters(build_model(cfg))


def train_step(model: torch.nn.Module, batch: int, seq_len: int, target_len: int, head: int) -> int:
    """Forward, loss and backward as the tasks run them; returns the tokens trained on."""
    cfg = model.config
    ids = torch.randint(7, cfg.vocab_size, (batch, seq_len))
    if cfg.arch == "decoder":
        loss = model.summed_nats(ids, ids) / ids.numel()
    elif cfg.arch == "encoder":
        hidden = model.hidden_states(ids)
        masked = hidden[:, :head]  # the head runs on `head` positions per row
        loss = F.cross_entropy(model.mlm_logits(masked).flatten(0, 1), ids[:, :head].flatten())
    else:
        targets = torch.randint(7, cfg.vocab_size, (batch, target_len))
        loss = model.summed_nats(ids, targets, decoder_input_ids=targets) / targets.numel()
    loss.backward()
    return batch * (seq_len + target_len)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_flops_per_token_matches_counted_matmuls(preset: str) -> None:
    """torch's FLOP counter over a real training step (attention through SDPA's math kernel,
    whose matmuls it sees); the estimate also counts norms and biases, hence the 3%."""
    cfg = preset_config(preset)
    seq_len, target_len = 32, (12 if cfg.arch == "encoder_decoder" else 0)
    head = 5 if cfg.arch == "encoder" else None
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        tokens = train_step(build_model(cfg), 3, seq_len, target_len, head or 0)
    measured = counter.get_total_flops() / tokens
    estimate = flops_per_token(cfg, seq_len, target_len, head)
    assert estimate == pytest.approx(measured, rel=0.03)


def test_the_mlm_head_is_counted_on_masked_positions_only() -> None:
    cfg = preset_config("bert")
    everywhere, masked = flops_per_token(cfg, 32), flops_per_token(cfg, 32, head_positions=5)
    head = 6 * (cfg.padded_vocab_size * cfg.d_model + cfg.d_model**2)  # per position, at least
    assert everywhere - masked >= head * 27 / 32


def saved_bytes(cfg: TransformerConfig, target_len: int, head: int | None) -> int:
    """Bytes autograd keeps from a training forward pass (batch 4, seq_len 32), weights excepted,
    plus the logits' gradient copy the backward pass adds."""
    model = build_model(cfg)
    model_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in model_storages:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        train_step(model, 4, 32, target_len, head or 0)
    if head:  # masked LM: the logits' gradient, next to the saved log-softmax
        return sum(saved.values()) + 4 * 4 * cfg.padded_vocab_size * head
    chunk = min(CHUNK_ELEMENTS, 4 * (target_len or 32) * cfg.vocab_size)  # the fused loss's
    return sum(saved.values()) + 4 * chunk


@pytest.mark.parametrize("preset", list(PRESETS))
def test_activation_estimate_is_close_to_what_autograd_saves(preset: str) -> None:
    cfg = preset_config(preset)
    target_len = 12 if cfg.arch == "encoder_decoder" else 0
    head = 5 if cfg.arch == "encoder" else None
    estimate = training_memory(
        cfg, batch_size=4, seq_len=32, target_len=target_len, head_positions=head
    )
    assert estimate.activations == pytest.approx(saved_bytes(cfg, target_len, head), rel=0.35)


def test_activation_checkpointing_keeps_layer_inputs_plus_one_recomputed_layer() -> None:
    full = preset_config("gpt")
    checkpointed = TransformerConfig(**{**full.to_dict(), "activation_checkpointing": True})
    kept = saved_bytes(checkpointed, 0, None)  # the forward pass keeps the layer inputs only
    one_layer = (saved_bytes(full, 0, None) - kept) / full.n_layers  # less its input, roughly
    estimate = training_memory(checkpointed, batch_size=4, seq_len=32).activations
    assert estimate == pytest.approx(kept + one_layer, rel=0.35)
    assert estimate < training_memory(full, batch_size=4, seq_len=32).activations


def test_memory_scales_with_precision_and_batch() -> None:
    cfg = preset_config("gpt")
    fp32 = training_memory(cfg, batch_size=4, seq_len=32)
    bf16 = training_memory(cfg, batch_size=4, seq_len=32, precision="bf16-true")
    double = training_memory(cfg, batch_size=8, seq_len=32)
    half = training_memory(cfg, batch_size=2, seq_len=32)
    assert fp32.weights == 4 * count_params(cfg).total == fp32.grads == fp32.optimizer / 2
    assert bf16.weights * 2 == fp32.weights and bf16.activations < fp32.activations
    assert double.activations - fp32.activations == 2 * (fp32.activations - half.activations)
    assert double.activations > 1.8 * fp32.activations and double.weights == fp32.weights
    with pytest.raises(ValueError, match="precision must be one of"):
        training_memory(cfg, batch_size=1, seq_len=8, precision="fp8")
