"""`python -m xformers_lab.train [overrides]`: pretrain or fine-tune from the Hydra config tree.

The command line is composed and validated first, so a mistake costs one line and creates no run
directory; then Hydra runs the job (or the sweep with `-m`).
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import datasets
import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from xformers_lab.cli import compose_checked
from xformers_lab.core import count_parameters
from xformers_lab.data.corpora import load_corpus
from xformers_lab.data.datamodule import TextDataModule
from xformers_lab.data.labelled import LabelledDataModule, load_labelled
from xformers_lab.data.tokenizers import build_tokenizer
from xformers_lab.errors import reported_user_errors
from xformers_lab.estimates import flops_per_token, row_shape
from xformers_lab.inference.loading import LoadedModel, load
from xformers_lab.paths import conf_dir
from xformers_lab.settings import RunSettings, resolve_settings
from xformers_lab.tasks import LanguageModelTask
from xformers_lab.training.export import WEIGHTS_FILE, export_safetensors, gathered_model
from xformers_lab.training.loggers import build_loggers, finish_loggers, logger_callbacks
from xformers_lab.training.preflight import check_output_dir
from xformers_lab.training.resilience import Resilience
from xformers_lab.training.resume import CHECKPOINT_DIR
from xformers_lab.training.run_stats import RunStats
from xformers_lab.training.summary import best_validation, write_summary
from xformers_lab.training.throughput import Throughput
from xformers_lab.training.token_metrics import TokenMetrics
from xformers_lab.training.trainer import build_trainer

CONFIG_NAME = "train"
WEIGHTS_PATH = Path(CHECKPOINT_DIR) / WEIGHTS_FILE


def main() -> None:
    """Console entry point."""
    with reported_user_errors():
        for cfg in compose_checked(CONFIG_NAME, sys.argv[1:]):
            resolve_settings(cfg)
        check_output_dir(CONFIG_NAME, sys.argv[1:])
    _hydra_entry()


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name=CONFIG_NAME)
def _hydra_entry(cfg: DictConfig) -> float | None:
    with reported_user_errors():
        summary = train(cfg, Path(HydraConfig.get().runtime.output_dir))
    return summary.get("best_val_loss")


def train(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train one run into `run_dir`; returns what `summary.json` holds."""
    started = time.perf_counter()
    settings = resolve_settings(cfg)
    _quiet_known_noise()
    L.seed_everything(settings.seed, workers=True, verbose=False)
    corpus = load_labelled(settings.data) if settings.task.labelled else load_corpus(settings.data)
    pretrained = load(settings.init_from) if settings.init_from else None
    if pretrained is not None:  # fine-tuning: the checkpoint's tokenizer, never a new one
        tokenizer = pretrained.tokenizer
    else:
        tokenizer = build_tokenizer(settings.tokenizer, corpus["train"]["text"])
    task = _build_task(cfg, settings, tokenizer, pretrained)
    datamodule = _build_datamodule(settings, tokenizer, corpus)
    stats = RunStats()
    shape = row_shape(settings.task_name, settings.data.seq_len, settings.task_options)
    throughput = Throughput(stats, flops_per_token(task.model_config, **asdict(shape)))
    checkpoints = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor="val/loss",
        mode="min",
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
        *logger_callbacks(loggers, task.name),
    ]
    trainer = build_trainer(settings.trainer, run_dir, loggers=loggers, callbacks=callbacks)
    with resilience.stopping():
        trainer.fit(
            task, datamodule=datamodule, ckpt_path=resilience.resume_from, weights_only=True
        )
    if stats.last_validated_step() != trainer.global_step:
        trainer.validate(task, datamodule=datamodule, verbose=False)
    summary = _summary(task, trainer, stats, checkpoints, time.perf_counter() - started)
    summary.update(throughput.summary(summary["train_tokens_per_sec"]))
    weights = gathered_model(task.model, task.model_config)  # every rank: gathers FSDP shards
    if trainer.is_global_zero and weights is not None:
        path = write_summary(run_dir, summary)
        export_safetensors(weights, task.model_config, task.name, run_dir / WEIGHTS_PATH)
        _report(run_dir, summary, path)
        finish_loggers(loggers, summary)
    return summary


def optimizer_factory(optim: DictConfig, precision: str) -> Any:
    """The optimizer partial; unfused under 16-mixed, where gradients must be unscaled before
    clipping and a fused optimizer would only unscale them inside its step."""
    if precision == "16-mixed" and optim.get("fused"):
        return instantiate(optim, fused=False)
    return instantiate(optim)


def _build_task(
    cfg: DictConfig, settings: RunSettings, tokenizer: Any, pretrained: LoadedModel | None
) -> LanguageModelTask:
    """The task's module; from `init_from`, the checkpoint's architecture and weights, with the
    run's `model.dropout` (fine-tuning often wants a different one)."""
    model_config = settings.model_config(tokenizer.vocab_size)
    if pretrained is not None:
        model_config = replace(pretrained.config, dropout=model_config.dropout)
    task = settings.task.module(
        model_config=model_config,
        tokenizer=tokenizer,
        optimizer=optimizer_factory(cfg.optim, settings.trainer.precision),
        scheduler=instantiate(cfg.scheduler),
        weight_decay=float(cfg.optim.get("weight_decay", 0.0)),
        total_steps=settings.trainer.max_steps,
        run_config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
        options=settings.task_options,
        compile_blocks=settings.trainer.compile,
    )
    if pretrained is not None:
        task.model.load_state_dict(pretrained.model.state_dict())
    return task


def _build_datamodule(settings: RunSettings, tokenizer: Any, corpus: Any) -> L.LightningDataModule:
    seq_len, spec, options = settings.data.seq_len, settings.task, settings.task_options
    if spec.labelled:
        return LabelledDataModule(
            settings.data,
            tokenizer,
            corpus,
            collator=spec.collator(tokenizer, seq_len, options),
            seed=settings.seed,
            num_labels=options.num_labels,
        )
    return TextDataModule(
        settings.data,
        tokenizer,
        corpus,
        block_len=spec.block_len(seq_len, options),
        stride=spec.stride(seq_len, options),
        collator=spec.collator(tokenizer, seq_len, options),
        seed=settings.seed,
    )


def _summary(
    task: LanguageModelTask,
    trainer: L.Trainer,
    stats: RunStats,
    checkpoints: ModelCheckpoint,
    wall_seconds: float,
) -> dict[str, Any]:
    best = best_validation(stats.validations)
    final = stats.validations[-1] if stats.validations else {}
    summary: dict[str, Any] = {
        "task": task.name,
        "best_val_loss": best.get("val/loss"),
        "best_val_step": best.get("step"),
        "val_bpb": best.get("val/bpb"),
        "final_val_loss": final.get("val/loss"),
        "final_train_loss": task.final_train_loss(),
        "steps": trainer.global_step,
        "tokens_seen": stats.tokens_seen,
        "train_tokens_per_sec": stats.tokens_per_second(),
        "wall_seconds": round(wall_seconds, 2),
        "n_params": count_parameters(task.model),
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
        f"  checkpoint: {summary['checkpoint']}\n"
        f"  summary:    {summary_path}"
    )


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


if __name__ == "__main__":
    main()
