"""The model registry: one shell per architecture, all built from `TransformerConfig`."""

from __future__ import annotations

from torch import nn

from xformers_lab.core.config import TransformerConfig
from xformers_lab.core.decoder import DecoderLM
from xformers_lab.core.encoder import EncoderLM
from xformers_lab.core.encoder_decoder import EncoderDecoderLM

MODELS: dict[str, type[nn.Module]] = {
    "decoder": DecoderLM,
    "encoder": EncoderLM,
    "encoder_decoder": EncoderDecoderLM,
}


def build_model(cfg: TransformerConfig) -> nn.Module:
    """The model for `cfg.arch`, freshly initialised."""
    if cfg.arch not in MODELS:
        raise ValueError(f"arch {cfg.arch!r} has no model yet; available: {', '.join(MODELS)}")
    return MODELS[cfg.arch](cfg)


def count_parameters(model: nn.Module) -> int:
    """Unique trainable parameters (a tied head counts once)."""
    return sum(p.numel() for p in model.parameters())
