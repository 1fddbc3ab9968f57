"""Lightning overhead: the same model, data and optimiser through our full Trainer path
(`xformers_lab.training.run.train`: Lightning loop, logging, clipping, schedule, checkpoints)
and through a plain PyTorch loop, alternated in one process; median tokens/s of each.

    python benchmarks/lightning_overhead.py [--steps 150] [--repeats 3] [hydra overrides ...]

Both sides measure the same steady-state window: after the first 10 optimizer steps, excluding
validation. The default shapes are those of `python -m xformers_lab.train`.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

from xformers_lab.cli import compose_config
from xformers_lab.data.corpora import load_corpus
from xformers_lab.data.datamodule import TextDataModule
from xformers_lab.data.tokenizers import build_tokenizer
from xformers_lab.settings import resolve_settings
from xformers_lab.training.module import TrainingModule
from xformers_lab.training.run import train

SKIP_STEPS = 10


def plain_loop(cfg, steps: int) -> float:
    """nanoGPT-style loop over the same batches (any objective: the task computes the loss):
    forward, loss, backward, clip, step."""
    settings = resolve_settings(cfg)
    torch.manual_seed(settings.seed)
    corpus = load_corpus(settings.data)
    tokenizer = build_tokenizer(settings.tokenizer, corpus["train"]["text"])
    objective = settings.objective(
        settings.model_config(tokenizer.vocab_size), tokenizer, settings.task_options
    )
    task = TrainingModule(
        objective,
        optimizer=instantiate(cfg.optim),
        scheduler=instantiate(cfg.scheduler),
        weight_decay=float(cfg.optim.weight_decay),
        total_steps=steps,
    )
    model = task.model.train()
    optimizers = task.configure_optimizers()
    optimizer, scheduler = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    seq_len, options = settings.data.seq_len, settings.task_options
    windows = settings.objective.windows(seq_len, options)
    data = TextDataModule(
        settings.data,
        tokenizer,
        corpus,
        block_len=windows.block_len,
        stride=windows.stride,
        collator=settings.objective.collator(tokenizer, seq_len, options),
        seed=settings.seed,
    )
    clip = settings.trainer.gradient_clip_val
    batches, tokens, start = iter(data.train_dataloader()), 0, 0.0
    for step in range(steps):
        if step == SKIP_STEPS:
            start, tokens = time.perf_counter(), 0
        batch = next(batches)
        nats, targets, _ = objective.summed_loss(batch)  # the objective's own loss
        loss = nats / targets
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += task.batch_tokens(batch)  # as the Trainer path counts them
    return tokens / (time.perf_counter() - start)


def trainer_path(cfg, run_dir: Path) -> float:
    """Our `train()` exactly as the CLI runs it; its summary reports steady-state tokens/s."""
    return train(cfg, run_dir)["train_tokens_per_sec"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.d_model=256")
    args = parser.parse_args()
    overrides = [
        f"trainer.max_steps={args.steps}",
        f"trainer.val_check_interval={args.steps}",
        "trainer.limit_val_batches=2",
        "trainer.progress_bar=false",
        "scheduler.warmup_steps=10",
        *args.overrides,
    ]
    cfg = compose_config("train", overrides)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    ours, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            plain.append(plain_loop(cfg, args.steps))
            ours.append(trainer_path(cfg, Path(tmp) / f"run{repeat}"))
    extra = overrides[5:] or "none"
    print(
        f"\nLightning overhead, {args.steps} steps x {args.repeats} alternating repeats, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, overrides: {extra}"
    )
    print(f"  plain PyTorch loop : {statistics.median(plain):10,.0f} tokens/s  {_runs(plain)}")
    print(f"  our Trainer path   : {statistics.median(ours):10,.0f} tokens/s  {_runs(ours)}")
    ratio = statistics.median(ours) / statistics.median(plain)
    print(f"  ours / plain       : {ratio:10.3f}  (overhead {100 * (1 - ratio):.1f}%)")


def _runs(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:,.0f}" for v in values) + ")"


if __name__ == "__main__":
    main()
