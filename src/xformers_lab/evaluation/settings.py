"""The typed view of `conf/evaluate.yaml`, checked before any model or data work."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from xformers_lab.data.config import DataConfig, data_config
from xformers_lab.data.sources import check_files
from xformers_lab.errors import UserError
from xformers_lab.typed_config import build

INSTALL_HINT = "pip install 'xformers_lab[eval]'"


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    """The `eval` keys: how requests and windows are batched."""

    stride: int | None = None
    """Perplexity: tokens between the starts of two windows; null: the model's max_seq_len."""
    max_batch_tokens: int = 16384
    """batch_size=auto: padded tokens per batch."""
    max_gen_toks: int = 256
    """generate_until: tokens per answer at most, unless a task sets its own."""

    def __post_init__(self) -> None:
        if self.stride is not None and self.stride <= 0:
            raise ValueError(f"stride must be positive, got {self.stride}")
        for name in ("max_batch_tokens", "max_gen_toks"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True)
class EvalArgs:
    """The top-level keys: what to evaluate, and how the harness runs."""

    ckpt: str
    """The checkpoint (a decoder or an encoder-decoder; perplexity: a decoder)."""
    tasks: tuple[str, ...] = ()
    """Harness task, group or tag names; `xlab` is the project's own three."""
    num_fewshot: int | None = None
    """Examples before each question; None: each task's own default."""
    limit: float | None = None
    """Documents per task (>= 1), or a fraction of each task (< 1); None: all."""
    batch_size: int | str = "auto"
    """Rows per batch, or `auto`: as many as fit `eval.max_batch_tokens`."""
    include_path: str | None = None
    """A folder of the user's own task YAMLs."""
    device: str = "cpu"
    seed: int = 1234
    """Seeds the harness's few-shot sampling and any sampled generation."""
    log_samples: bool = False
    """Write each document's prompt and responses to samples_<task>.jsonl."""

    @property
    def batch_rows(self) -> int | None:
        """Rows per batch; None for auto."""
        return None if self.batch_size == "auto" else int(self.batch_size)


@dataclass(frozen=True)
class EvalSettings:
    """One evaluation: a checkpoint on harness tasks (`args.tasks`) or on a corpus (`data`)."""

    args: EvalArgs
    eval: EvalOptions
    data: DataConfig | None
    wandb: dict[str, Any] | None
    """`logger=wandb` options, when given."""


def resolve(cfg: DictConfig) -> EvalSettings:
    """Check `cfg` (composed `conf/evaluate.yaml`); raise `UserError` on the first problem."""
    values: dict[str, Any] = OmegaConf.to_container(cfg, resolve=False)  # type: ignore[assignment]
    if isinstance(values.get("tasks"), str):
        values["tasks"] = [values["tasks"]]
    options = build(EvalOptions, values.pop("eval", None), "eval")
    data = values.pop("data", None)
    wandb = _wandb_options(values.pop("logger", None))
    settings = EvalSettings(
        args=build(EvalArgs, values, "evaluate"),
        eval=options,
        data=data_config(data) if data is not None else None,
        wandb=wandb,
    )
    _check(settings)
    return settings


def _check(settings: EvalSettings) -> None:
    args = settings.args
    if not Path(args.ckpt).exists():
        raise UserError(f"ckpt={args.ckpt} does not exist")
    if bool(args.tasks) == (settings.data is not None):
        raise UserError(
            "give tasks=[...] (harness tasks) or data=<corpus> (perplexity), one of the two; "
            "e.g. tasks=[xlab] or data=text data.path=test.txt"
        )
    if args.batch_size != "auto" and not (isinstance(args.batch_size, int) and args.batch_size > 0):
        raise UserError(f"batch_size must be a positive int or auto, got {args.batch_size!r}")
    if args.num_fewshot is not None and args.num_fewshot < 0:
        raise UserError(f"num_fewshot must be >= 0, got {args.num_fewshot}")
    if args.limit is not None and args.limit <= 0:
        raise UserError(f"limit must be positive (a count, or a fraction < 1), got {args.limit}")
    if args.include_path is not None and not Path(args.include_path).is_dir():
        raise UserError(f"include_path={args.include_path} is not a folder of task YAMLs")
    if settings.data is not None:
        check_files(settings.data)
    if args.tasks:
        require_lm_eval()


def require_lm_eval() -> None:
    """Harness tasks need the `eval` extra; say how to get it, in one line."""
    if importlib.util.find_spec("lm_eval") is None:
        raise UserError(f"harness tasks need lm-evaluation-harness: {INSTALL_HINT}")


def _wandb_options(logger: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `logger.wandb` node's options; `logger=csv` has nothing to do here."""
    if not logger:
        return None
    unknown = sorted(set(logger) - {"wandb"})
    if unknown:
        raise UserError(
            f"logger={unknown[0]} does not apply to evaluate, which always writes results.json "
            "and results.md; logger=wandb logs them to Weights & Biases too"
        )
    return dict(logger["wandb"])
