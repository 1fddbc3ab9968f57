"""xformers_lab: one modular transformer core, three families (BERT, GPT, T5).

lab = xformers_lab.load("outputs/.../checkpoints/best.ckpt")
logits = lab.model(input_ids)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xformers_lab.inference.loading import LoadedModel

__all__ = ["load"]


def load(path: Any, device: Any = "cpu") -> LoadedModel:
    """Rebuild a trained model and its tokenizer from a checkpoint (see `inference.loading`)."""
    from xformers_lab.inference.loading import load as _load

    return _load(path, device)
