"""The HF architectures we convert, by the class name in config.json's `architectures`."""

from __future__ import annotations

from typing import Any

from xformers_lab.core import TransformerConfig
from xformers_lab.errors import UserError
from xformers_lab.interop.adapter import HFAdapter
from xformers_lab.interop.bert import BertAdapter
from xformers_lab.interop.gpt2 import GPT2Adapter
from xformers_lab.interop.llama import LlamaAdapter
from xformers_lab.interop.t5 import T5Adapter

ADAPTERS: dict[str, HFAdapter] = {
    adapter.architecture: adapter
    for adapter in (GPT2Adapter(), BertAdapter(), T5Adapter(), LlamaAdapter())
}


def adapter_for_hf(hf_config: dict[str, Any]) -> HFAdapter:
    """The adapter of the architecture config.json names; anything else fails in one line."""
    names = hf_config.get("architectures") or []
    for name in names:
        if name in ADAPTERS:
            return ADAPTERS[name]
    by_type = [a for a in ADAPTERS.values() if a.model_type == hf_config.get("model_type")]
    if not names and len(by_type) == 1:
        return by_type[0]
    found = ", ".join(names) or f"model_type={hf_config.get('model_type')!r}"
    raise UserError(f"unsupported architecture {found}; converts: {', '.join(ADAPTERS)}")


def adapter_for(cfg: TransformerConfig) -> HFAdapter:
    """The HF architecture a model of ours exports to (by arch and position scheme)."""
    for adapter in ADAPTERS.values():
        if adapter.exports(cfg):
            return adapter
    raise UserError(
        f"unsupported: no Hugging Face architecture for arch={cfg.arch} with "
        f"position={cfg.position}; exports: GPT-2 (decoder, learned), Llama (decoder, rope), "
        "BERT (encoder, learned), T5 (encoder_decoder, t5)"
    )
