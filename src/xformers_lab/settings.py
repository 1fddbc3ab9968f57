"""Validate a composed run config into typed settings, before any data or model work.

Everything a user can get wrong on the command line should fail here, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from xformers_lab import checkpoints
from xformers_lab.core import TransformerConfig
from xformers_lab.data.config import DataConfig, TokenizerConfig, data_config
from xformers_lab.data.sources import check_examples, check_files
from xformers_lab.errors import UserError
from xformers_lab.estimates import RowShape
from xformers_lab.paths import conf_dir
from xformers_lab.tasks import Objective, objective_class, objective_names
from xformers_lab.training.resume import check_resume
from xformers_lab.training.trainer_config import TrainerConfig, check_launch
from xformers_lab.training.wandb_config import check_loggers
from xformers_lab.typed_config import build

WARMUP_SHARE = 0.1
"""Share of a run a warmup longer than the run is shortened to."""


@dataclass(frozen=True)
class RunSettings:
    """The typed view of one run's config."""

    model: dict[str, Any]
    """TransformerConfig fields; `vocab_size` comes from the tokenizer."""
    objective: type[Objective]
    task_options: Any
    """Instance of `objective.Options`."""
    data: DataConfig
    tokenizer: TokenizerConfig
    trainer: TrainerConfig
    seed: int
    init_from: str | None = None
    """Checkpoint whose weights and tokenizer the model starts from (fine-tuning)."""
    helpers: dict[str, str] = field(default_factory=dict)
    """Checkpoints of the objective's frozen helper models, by name."""
    scheduler: dict[str, Any] = field(default_factory=dict)
    """The `scheduler` group (a Hydra partial), fitted to the run's length."""
    notes: tuple[str, ...] = ()
    """What was adapted to make the config fit (printed once when the run starts)."""

    @property
    def task_name(self) -> str:
        return self.objective.name

    def model_config(self, vocab_size: int) -> TransformerConfig:
        return build(TransformerConfig, self.model, "model", vocab_size=vocab_size)

    def row_shape(self) -> RowShape:
        """One training row, as the FLOPs and memory estimates count it."""
        return self.objective.row_shape(self.data.seq_len, self.task_options)


def resolve_settings(cfg: DictConfig) -> RunSettings:
    """Check every group of `cfg` and how they fit together; raise `UserError` on the first
    problem. Resolved once per config: the validation before a run and the run itself share
    the result."""
    key = OmegaConf.to_yaml(cfg)
    if key not in _resolved:
        _resolved[key] = _resolve(cfg)
    return _resolved[key]


_resolved: dict[str, RunSettings] = {}


def _resolve(cfg: DictConfig) -> RunSettings:
    model = _container(cfg, "model")
    model_config = build(TransformerConfig, model, "model", vocab_size=1)
    task_node = _container(cfg, "task")
    objective = objective_class(task_node.pop("name", None))
    if model_config.arch not in objective.archs:
        raise UserError(
            f"task={objective.name} trains {_archs(objective)} models but "
            f"model.arch={model_config.arch}; valid pairs: {valid_pairs()}"
        )
    data = data_config(_container(cfg, "data"))
    check_files(data)
    if objective.fields:
        check_examples(data, objective.fields)
    init_from = cfg.get("init_from")
    init_config = _init_config(init_from, objective)
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
    scheduler, notes = fit_schedule(_container(cfg, "scheduler"), trainer.max_steps)
    _check_optimizer(cfg, scheduler, trainer.max_steps)
    check_loggers(cfg)
    seed = cfg.get("seed")
    if not isinstance(seed, int):
        raise UserError(f"seed must be an int, got {seed!r}")
    task_options = build(objective.Options, task_node, "task")
    tokenizer = build(TokenizerConfig, cfg.get("tokenizer"), "tokenizer")
    objective.check(data, tokenizer, task_options)
    helpers = objective.helper_checkpoints(task_options)
    for path in helpers.values():
        checkpoints.read(path)  # one line now for a missing or unreadable one, not mid-run
    return RunSettings(
        model=model,
        objective=objective,
        task_options=task_options,
        data=data,
        tokenizer=tokenizer,
        trainer=trainer,
        seed=seed,
        init_from=init_from,
        helpers=helpers,
        scheduler=scheduler,
        notes=notes,
    )


def valid_pairs() -> str:
    """`task: model presets` for every objective, read from the shipped model presets."""
    presets: dict[str, list[str]] = {}
    for path in sorted((conf_dir() / "model").glob("*.yaml")):
        presets.setdefault(preset_arch(path.stem), []).append(path.stem)
    pairs = []
    for name in objective_names():
        archs = sorted(objective_class(name).archs)
        models = [m for arch in archs for m in presets.get(arch, [])] or ["<none>"]
        pairs.append(f"task={name} with model={'|'.join(models)}")
    return "; ".join(pairs)


def preset_arch(preset: str) -> str:
    """The `arch` of a shipped model preset, following the presets it extends (`bert_original`
    starts from `bert`); TransformerConfig's default when none sets it."""
    node = OmegaConf.load(conf_dir() / "model" / f"{preset}.yaml")
    if "arch" in node:
        return str(node.arch)
    bases = [d for d in node.get("defaults", []) if isinstance(d, str) and not d.startswith("_")]
    return preset_arch(bases[0]) if bases else TransformerConfig.arch


def _archs(objective: type[Objective]) -> str:
    return " or ".join(sorted(objective.archs))


def _init_config(init_from: Any, objective: type[Objective]) -> TransformerConfig | None:
    """The architecture saved in the `init_from` checkpoint, which must suit the objective."""
    if init_from is None:
        return None
    if not isinstance(init_from, str) or not init_from:
        raise UserError(f"init_from must be a checkpoint path, got {init_from!r}")
    payload = checkpoints.read(init_from).payload
    config = payload.model_config
    if config.arch not in objective.archs:
        raise UserError(
            f"init_from={init_from} holds a {config.arch} model (trained with "
            f"task={payload.task}) but task={objective.name} trains {_archs(objective)} models"
        )
    return config


def _container(cfg: DictConfig, key: str) -> dict[str, Any]:
    node = cfg.get(key)
    if node is None:
        raise UserError(f"the config has no {key} group; pick one, e.g. {key}=<option>")
    return dict(OmegaConf.to_container(node, resolve=True))  # type: ignore[arg-type]


def fit_schedule(
    scheduler: dict[str, Any], max_steps: int
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The schedule fitted to a run of `max_steps`: a warmup longer than the run is shortened to
    a tenth of it (as a quick `trainer.max_steps=20` wants; Hugging Face's schedules tolerate it
    too), with a note saying so."""
    warmup = scheduler.get("warmup_steps")
    if not isinstance(warmup, int) or warmup <= max_steps:
        return scheduler, ()
    fitted = round(WARMUP_SHARE * max_steps)
    note = (
        f"scheduler.warmup_steps={warmup} is longer than the run (trainer.max_steps={max_steps}): "
        f"warming up over {fitted} steps instead"
    )
    return {**scheduler, "warmup_steps": fitted}, (note,)


def _check_optimizer(cfg: DictConfig, scheduler: dict[str, Any], max_steps: int) -> None:
    """Build the optimizer and schedule on a dummy parameter: catches bad keys and values."""
    probe = [torch.nn.Parameter(torch.zeros(1))]
    try:
        optimizer = instantiate(cfg.optim)([{"params": probe}])
    except Exception as err:  # any construction error is a config error here
        raise UserError(f"optim: {_first_line(err)}") from None
    try:
        instantiate(scheduler)(optimizer, total_steps=max_steps)
    except Exception as err:
        raise UserError(f"scheduler: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    cause = err.__cause__ or err
    return str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
