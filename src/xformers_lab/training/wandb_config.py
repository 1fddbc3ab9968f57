"""The `logger.wandb` keys as a typed config, checked at config time without importing W&B or
Lightning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf

from xformers_lab.typed_config import build

WANDB_TARGET = "xformers_lab.training.wandb_logger.wandb_logger"
"""The `_target_` of `logger=wandb` (conf/logger/wandb.yaml)."""


@dataclass(frozen=True, kw_only=True)
class WandbConfig:
    """The `logger.wandb` keys."""

    project: str = "xformers_lab"
    """W&B project."""
    entity: str | None = None
    """W&B team or user; null: the API key's default."""
    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    """auto: online with an API key (WANDB_API_KEY or `wandb login`), else offline; a WANDB_MODE
    environment variable wins over auto."""
    name: str | None = None
    """Run name; null: the job's overrides (in a sweep, the ones the sweep varies)."""
    group: str | None = None
    """Run group; null: the sweep directory in a multirun, no group for a single run."""
    tags: tuple[str, ...] = ()
    """Tags added to the automatic ones (the model preset, the task, the experiment)."""
    log_checkpoints: bool = False
    """Upload the best and last checkpoints as artifacts at the end of training."""
    samples_every_n_steps: int = 500
    """Causal LMs: log a table of greedy continuations of `sample_prompts` this often; 0: never."""
    sample_prompts: tuple[str, ...] = ("def ", "import ", "class ")
    """Fixed prompts of the samples table."""
    sample_max_new_tokens: int = 48
    """Length of each sample, in tokens."""

    def __post_init__(self) -> None:
        if self.samples_every_n_steps < 0:
            raise ValueError("samples_every_n_steps must be >= 0 (0 disables the samples table)")
        if self.samples_every_n_steps and not self.sample_prompts:
            raise ValueError("sample_prompts is empty; give prompts or set samples_every_n_steps=0")
        if self.sample_max_new_tokens <= 0:
            raise ValueError("sample_max_new_tokens must be positive")


def check_loggers(cfg: DictConfig) -> None:
    """Refuse bad `logger.wandb` options before any run directory exists."""
    for key, node in (cfg.get("logger") or {}).items():
        if isinstance(node, DictConfig) and node.get("_target_") == WANDB_TARGET:
            options: dict[str, Any] = OmegaConf.to_container(node, resolve=True)  # type: ignore[assignment]
            options.pop("_target_")
            options.pop("_convert_", None)
            build(WandbConfig, options, f"logger.{key}")
