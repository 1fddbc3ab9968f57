"""Tiny random checkpoints of each family, written in the format training writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.data.tokenizers import ByteTokenizer
from xformers_lab.interop.conversion import save_checkpoint

FAMILY = {
    "decoder": ({}, "clm"),
    "encoder_decoder": ({"position": "t5", "ffn": "geglu", "norm": "rms", "bias": False}, "span"),
    "encoder": ({}, "mlm"),
}


def tiny_model(
    arch: str, max_seq_len: int = 32, seed: int = 0
) -> tuple[torch.nn.Module, ByteTokenizer]:
    tokenizer = ByteTokenizer.train([], n_sentinels=4)
    extra, _ = FAMILY[arch]
    cfg = TransformerConfig(
        vocab_size=tokenizer.vocab_size,
        arch=arch,
        d_model=32,
        n_heads=2,
        n_layers=2,
        max_seq_len=max_seq_len,
        **extra,
    )
    torch.manual_seed(seed)
    return build_model(cfg).eval(), tokenizer


@pytest.fixture
def make_ckpt(tmp_path: Path):
    """(arch, max_seq_len=32) -> path of a random checkpoint with a byte tokenizer."""

    def make(arch: str, max_seq_len: int = 32) -> Path:
        model, tokenizer = tiny_model(arch, max_seq_len)
        path = tmp_path / f"{arch}.ckpt"
        return save_checkpoint(path, model, tokenizer, FAMILY[arch][1], {})

    return make
