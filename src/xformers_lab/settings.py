"""Validate a composed run config into typed settings, before any data or model work.

Everything a user can get wrong on the command line should fail here, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xformers_lab.core import TransformerConfig
from xformers_lab.data.config import DataConfig, TokenizerConfig
from xformers_lab.data.corpora.files import check_files
from xformers_lab.data.labelled import check_labelled
from xformers_lab.errors import UserError
from xformers_lab.inference.loading import read_checkpoint
from xformers_lab.paths import conf_dir
from xformers_lab.tasks import TASKS, TaskSpec
from xformers_lab.tasks.base import CHECKPOINT_KEY
from xformers_lab.training.loggers import check_loggers
from xformers_lab.training.resume import check_resume
from xformers_lab.training.trainer import TrainerConfig
from xformers_lab.training.trainer_checks import check_launch
from xformers_lab.typed_config import build


@dataclass(frozen=True)
class RunSettings:
    """The typed view of one run's config."""

    model: dict[str, Any]
    """TransformerConfig fields; `vocab_size` comes from the tokenizer."""
    task_name: str
    task: TaskSpec
    task_options: Any
    """Instance of `task.options`."""
    data: DataConfig
    tokenizer: TokenizerConfig
    trainer: TrainerConfig
    seed: int
    init_from: str | None = None
    """Checkpoint whose weights and tokenizer the model starts from (fine-tuning)."""

    def model_config(self, vocab_size: int) -> TransformerConfig:
        return build(TransformerConfig, self.model, "model", vocab_size=vocab_size)


def resolve_settings(cfg: DictConfig) -> RunSettings:
    """Check every group of `cfg` and how they fit together; raise `UserError` on the first
    problem."""
    model = _container(cfg, "model")
    model_config = build(TransformerConfig, model, "model", vocab_size=1)
    task_node = _container(cfg, "task")
    task_name = task_node.pop("name", None)
    if task_name not in TASKS:
        raise UserError(f"unknown task {task_name!r}; choose one of: {', '.join(TASKS)}")
    task = TASKS[task_name]
    if model_config.arch != task.arch:
        raise UserError(
            f"task={task_name} trains {task.arch} models but model.arch={model_config.arch}; "
            f"valid pairs: {valid_pairs()}"
        )
    data = build(DataConfig, cfg.get("data"), "data")
    check_files(data)
    if task.labelled:
        check_labelled(data)
    init_from = cfg.get("init_from")
    init_config = _init_config(init_from, task_name, task)
    max_seq_len = (init_config or model_config).max_seq_len
    if data.seq_len > max_seq_len:
        where, fix = (f" of init_from={init_from}", "") if init_config else ("", " or raise it")
        raise UserError(
            f"data.seq_len={data.seq_len} exceeds model.max_seq_len={max_seq_len}{where}; "
            f"lower data.seq_len{fix}"
        )
    trainer = build(TrainerConfig, cfg.get("trainer"), "trainer")
    try:
        trainer.check_hardware()
        check_launch(trainer)
    except ValueError as err:
        raise UserError(f"trainer: {err}") from None
    check_resume(trainer.resume)
    _check_optimizer(cfg, trainer.max_steps)
    check_loggers(cfg)
    seed = cfg.get("seed")
    if not isinstance(seed, int):
        raise UserError(f"seed must be an int, got {seed!r}")
    task_options = build(task.options, task_node, "task")
    tokenizer = build(TokenizerConfig, cfg.get("tokenizer"), "tokenizer")
    if task.check is not None:  # objective-specific limits, e.g. spans vs sentinels
        task.check(data.seq_len, tokenizer, task_options)
    return RunSettings(
        model=model,
        task_name=task_name,
        task=task,
        task_options=task_options,
        data=data,
        tokenizer=tokenizer,
        trainer=trainer,
        seed=seed,
        init_from=init_from,
    )


def valid_pairs() -> str:
    """`task: model presets` for every task, read from the shipped model presets."""
    presets: dict[str, list[str]] = {}
    for path in sorted((conf_dir() / "model").glob("*.yaml")):
        arch = OmegaConf.load(path).get("arch", "decoder")
        presets.setdefault(arch, []).append(path.stem)
    return "; ".join(
        f"task={name} with model={'|'.join(presets.get(spec.arch, ['<none>']))}"
        for name, spec in TASKS.items()
    )


def _init_config(init_from: Any, task_name: str, task: TaskSpec) -> TransformerConfig | None:
    """The architecture saved in the `init_from` checkpoint, which must suit the task."""
    if init_from is None:
        return None
    if not isinstance(init_from, str) or not init_from:
        raise UserError(f"init_from must be a checkpoint path, got {init_from!r}")
    payload = read_checkpoint(init_from)[CHECKPOINT_KEY]
    config = TransformerConfig(**payload["model_config"])
    if config.arch != task.arch:
        raise UserError(
            f"init_from={init_from} holds a {config.arch} model (trained with "
            f"task={payload.get('task')}) but task={task_name} trains {task.arch} models"
        )
    return config


def _container(cfg: DictConfig, key: str) -> dict[str, Any]:
    node = cfg.get(key)
    if node is None:
        raise UserError(f"the config has no {key} group; pick one, e.g. {key}=<option>")
    return dict(OmegaConf.to_container(node, resolve=True))  # type: ignore[arg-type]


def _check_optimizer(cfg: DictConfig, max_steps: int) -> None:
    """Build the optimizer and schedule on a dummy parameter: catches bad keys and values."""
    probe = [torch.nn.Parameter(torch.zeros(1))]
    try:
        optimizer = instantiate(cfg.optim)([{"params": probe}])
    except Exception as err:  # any construction error is a config error here
        raise UserError(f"optim: {_first_line(err)}") from None
    try:
        instantiate(cfg.scheduler)(optimizer, total_steps=max_steps)
    except Exception as err:
        raise UserError(f"scheduler: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    cause = err.__cause__ or err
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
