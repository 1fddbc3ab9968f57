"""Hugging Face interop: GPT-2, BERT, T5 and Llama weights in and out of the core.

    python -m xformers_lab.convert from-hf <hf_dir> <out.ckpt>
    python -m xformers_lab.convert to-hf <ckpt> <hf_dir>

One adapter per family (`gpt2.py`, `bert.py`, `t5.py`, `llama.py`) maps config fields and
weight names; `conversion.py` reads and writes whole directories and checkpoints.
"""

from xformers_lab.interop.conversion import convert_from_hf, convert_to_hf, export_hf, import_hf
from xformers_lab.interop.registry import ADAPTERS, adapter_for, adapter_for_hf

__all__ = [
    "ADAPTERS",
    "adapter_for",
    "adapter_for_hf",
    "convert_from_hf",
    "convert_to_hf",
    "export_hf",
    "import_hf",
]
