"""One training run: data, tokenizer, objective, the Lightning shell and trainer, checkpoints and
`summary.json`. `python -m xformers_lab.train` validates the command line first, then calls
`train` for each job (`train.py`)."""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import datasets
import lightning as L
import torch
from datasets import DatasetDict
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from xformers_lab.core import count_parameters
from xformers_lab.data.corpora import load_corpus
from xformers_lab.data.datamodule import TextDataModule
from xformers_lab.data.examples import example_texts, load_examples
from xformers_lab.data.examples_module import ExamplesDataModule
from xformers_lab.data.tokenizers import build_tokenizer
from xformers_lab.estimates import flops_per_token
from xformers_lab.inference.loading import LoadedModel, load
from xformers_lab.settings import RunSettings, resolve_settings
from xformers_lab.tasks import Objective
from xformers_lab.tasks.objective import Tracked
from xformers_lab.training.export import WEIGHTS_FILE, export_safetensors, gathered_model
from xformers_lab.training.loggers import build_loggers, finish_loggers, logger_callbacks
from xformers_lab.training.module import TrainingModule
from xformers_lab.training.resilience import Resilience
from xformers_lab.training.resume import CHECKPOINT_DIR
from xformers_lab.training.run_stats import RunStats
from xformers_lab.training.summary import best_validation, write_summary
from xformers_lab.training.throughput import Throughput
from xformers_lab.training.token_metrics import TokenMetrics
from xformers_lab.training.trainer import build_trainer
from xformers_lab.training.trainer_config import intra_op_threads

WEIGHTS_PATH = Path(CHECKPOINT_DIR) / WEIGHTS_FILE
log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one run into `run_dir`; returns what `summary.json` holds."""
    started = time.perf_counter()
    settings = resolve_settings(cfg)
    _quiet_known_noise()
    for note in settings.notes:
        log.warning(note)
    threads = intra_op_threads(settings.trainer, os.environ, len(os.sched_getaffinity(0)))
    if threads is not None:
        torch.set_num_threads(threads)
    L.seed_everything(settings.seed, workers=True, verbose=False)
    pretrained = load(settings.init_from) if settings.init_from else None
    data = _load_data(settings)
    if pretrained is not None:  # fine-tuning: the checkpoint's tokenizer, never a new one
        tokenizer = pretrained.tokenizer
    else:
        tokenizer = build_tokenizer(settings.tokenizer, _tokenizer_texts(settings, data))
    objective = _build_objective(settings, tokenizer, pretrained)
    datamodule = _build_datamodule(settings, objective, data)
    module = TrainingModule(
        objective,
        optimizer=optimizer_factory(cfg.optim, settings.trainer.precision),
        scheduler=instantiate(settings.scheduler),
        weight_decay=float(cfg.optim.get("weight_decay", 0.0)),
        total_steps=settings.trainer.max_steps,
        run_config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
        compile_blocks=settings.trainer.compile,
    )
    stats = RunStats()
    flops = flops_per_token(objective.model_config, **asdict(settings.row_shape()))
    throughput = Throughput(stats, flops)
    tracked = objective.best  # an instance's: its options may choose it (task.monitor)
    checkpoints = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=f"val/{tracked.metric}",
        mode=tracked.mode,
        save_last=True,
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,  # one last.ckpt, whichever callback writes it
    )
    loggers = build_loggers(cfg, run_dir)
    resilience = Resilience(settings.trainer, run_dir)
    callbacks = [
        stats,
        TokenMetrics(),
        throughput,
        checkpoints,
        *resilience.callbacks,
        *logger_callbacks(loggers, settings.objective.generative),
    ]
    trainer = build_trainer(settings.trainer, run_dir, loggers=loggers, callbacks=callbacks)
    with resilience.stopping():
        trainer.fit(
            module, datamodule=datamodule, ckpt_path=resilience.resume_from, weights_only=True
        )
    if stats.last_validated_step() != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False, weights_only=True)
        _keep_if_best(trainer, stats, checkpoints, tracked)
    summary = _summary(module, trainer, stats, checkpoints, time.perf_counter() - started)
    summary.update(throughput.summary(summary["train_tokens_per_sec"]))
    weights = gathered_model(module.model, objective.model_config)  # every rank: gathers shards
    if trainer.is_global_zero and weights is not None:
        path = write_summary(run_dir, summary)
        export_safetensors(weights, objective.model_config, objective.name, run_dir / WEIGHTS_PATH)
        _report(run_dir, summary, path)
        finish_loggers(loggers, summary)
    return summary


def _keep_if_best(
    trainer: L.Trainer, stats: RunStats, checkpoints: ModelCheckpoint, tracked: Tracked
) -> None:
    """The end-of-run validation runs after `fit`, where ModelCheckpoint does not look: when it
    is the best validation (or the only one: a run shorter than `val_check_interval`), write
    `best.ckpt` from it, so every run ends with a usable best checkpoint."""
    best = best_validation(stats.validations, tracked)
    if not best or best is not stats.validations[-1]:
        return
    path = Path(checkpoints.dirpath) / f"{checkpoints.filename}{checkpoints.FILE_EXTENSION}"
    trainer.save_checkpoint(path, weights_only=False)  # every rank: collective under FSDP
    checkpoints.best_model_path = str(path)
    checkpoints.best_model_score = torch.tensor(best[f"val/{tracked.metric}"])


def optimizer_factory(optim: DictConfig, precision: str) -> Any:
    """The optimizer partial; unfused under 16-mixed, where gradients must be unscaled before
    clipping and a fused optimizer would only unscale them inside its step."""
    if precision == "16-mixed" and optim.get("fused"):
        return instantiate(optim, fused=False)
    return instantiate(optim)


def _load_data(settings: RunSettings) -> DatasetDict:
    """The corpus of a packed objective, or the examples (columns named by role) of others."""
    if settings.objective.fields:
        return load_examples(settings.data, settings.objective.fields)
    return load_corpus(settings.data)


def _tokenizer_texts(settings: RunSettings, data: DatasetDict) -> list[str]:
    if settings.objective.fields:
        return example_texts(data, settings.objective.fields)
    return data["train"]["text"]


def _build_objective(
    settings: RunSettings, tokenizer: Any, pretrained: LoadedModel | None
) -> Objective:
    """The objective, with its frozen helpers; from `init_from`, the checkpoint's architecture
    and weights, with the run's `model.dropout` (fine-tuning often wants a different one)."""
    model_config = settings.model_config(tokenizer.vocab_size)
    if pretrained is not None:
        model_config = replace(pretrained.config, dropout=model_config.dropout)
    helpers = {name: load(path).model for name, path in settings.helpers.items()}
    objective = settings.objective(model_config, tokenizer, settings.task_options, helpers)
    if pretrained is not None:
        objective.model.load_state_dict(pretrained.model.state_dict())
    return objective


def _build_datamodule(
    settings: RunSettings, objective: Objective, data: DatasetDict
) -> L.LightningDataModule:
    spec, options, seq_len = settings.objective, settings.task_options, settings.data.seq_len
    collator = spec.collator(objective.tokenizer, seq_len, options)
    if spec.fields:
        return ExamplesDataModule(
            settings.data,
            objective.prepare_examples(data),
            encode=spec.encoder(objective.tokenizer, options),
            collator=collator,
            seed=settings.seed,
        )
    windows = spec.windows(seq_len, options)
    return TextDataModule(
        settings.data,
        objective.tokenizer,
        data,
        block_len=windows.block_len,
        stride=windows.stride,
        collator=collator,
        seed=settings.seed,
    )


def _summary(
    module: TrainingModule,
    trainer: L.Trainer,
    stats: RunStats,
    checkpoints: ModelCheckpoint,
    wall_seconds: float,
) -> dict[str, Any]:
    best = best_validation(stats.validations, module.objective.best)
    final = stats.validations[-1] if stats.validations else {}
    summary: dict[str, Any] = {
        "task": module.name,
        "best_val_loss": best.get("val/loss"),
        "best_val_step": best.get("step"),
        "val_bpb": best.get("val/bpb"),
        "final_val_loss": final.get("val/loss"),
        "final_train_loss": module.final_train_loss(),
        "steps": trainer.global_step,
        "tokens_seen": stats.tokens_seen,
        "train_tokens_per_sec": stats.tokens_per_second(),
        "wall_seconds": round(wall_seconds, 2),
        "n_params": count_parameters(module.model),
        "intra_op_threads": torch.get_num_threads(),
        "checkpoint": checkpoints.best_model_path or None,
        "last_checkpoint": checkpoints.last_model_path or None,
    }
    summary.update(
        {f"best_{k.replace('/', '_')}": v for k, v in best.items() if k.startswith("val/")}
    )
    return summary


def _report(run_dir: Path, summary: dict[str, Any], summary_path: Path) -> None:
    def fmt(value: Any, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    print(
        f"\ndone: {summary['steps']} steps in {summary['wall_seconds']:.0f} s, "
        f"best val loss {fmt(summary['best_val_loss'], '.4f')} nats/token, "
        f"val_bpb {fmt(summary['val_bpb'], '.3f')}, "
        f"{fmt(summary['train_tokens_per_sec'], ',.0f')} tokens/s\n"
        f"  run dir:    {run_dir}\n"
        f"  checkpoint: {summary['checkpoint'] or _no_best(summary)}\n"
        f"  summary:    {summary_path}"
    )


def _no_best(summary: dict[str, Any]) -> str:
    return f"none: the run never validated; its last state is {summary['last_checkpoint']}"


def _quiet_known_noise() -> None:
    """Advice and deprecation chatter from dependencies that a user cannot act on."""
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated.*")
    # jobs reach Slurm through hydra/launcher=slurm, not by prefixing srun as this hint says
    warnings.filterwarnings("ignore", message=".*The `srun` command is available on your system.*")
    # validation metrics are summed across ranks by the task itself (accumulate_val)
    warnings.filterwarnings("ignore", message=r".*self.log\('val/.*sync_dist=True.*")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(lambda record: "litlogger" not in record.getMessage())
    if not sys.stderr.isatty():
        datasets.disable_progress_bars()
