"""The transformer core: one stack, configured into encoders, decoders and encoder-decoders.

Imports torch only; knows nothing of tasks, data, Hydra or Lightning.
"""

from xformers_lab.core.config import TransformerConfig
from xformers_lab.core.model import build_model, count_parameters

__all__ = ["TransformerConfig", "build_model", "count_parameters"]
