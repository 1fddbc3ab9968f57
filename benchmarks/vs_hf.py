"""Training speed and peak memory against Hugging Face transformers at the same shapes: tokens/s
of a training step (forward, loss, backward, AdamW step) for gpt, bert and t5, ours against
`GPT2LMHeadModel`, `BertForMaskedLM` and `T5ForConditionalGeneration`, and our full Trainer path
(`xformers_lab.training.run.train`, as `lightning_overhead.py` runs it) against our raw loop.

    python benchmarks/vs_hf.py [--steps 5] [--trainer-steps 40] [--repeats 3] \
        [--families gpt bert t5]

Shapes: d_model 256, 4 layers (T5: 4 + 4), 4 heads, d_ff 1024, vocabulary 8192, batch 8,
seq_len 256 (T5: 256 encoder tokens and 64 targets), no dropout, fp32, SDPA attention on both
sides. MLM: the same 15% of positions are predicted on both sides; HF runs its head over all
positions (labels -100 elsewhere), ours only over the selected ones, which is part of our lead.
GPT and T5: our loss runs the LM head and cross-entropy fused in chunks of rows
(`core/linear_cross_entropy.py`), never writing the logits; HF computes them whole. Both sides
step a fused AdamW (ours by default; HF Trainer's default since torch 2.8).

Every measurement runs in a fresh subprocess, and the script alternates them (HF, ours, our
Trainer, HF, ...) so drift in machine load hits every side alike; the table reports medians.
Peak memory: torch's CPU allocations are invisible to tracemalloc, so each subprocess reads its
resident set size after building its batches (and, for the Trainer path, after imports only),
then the kernel's peak RSS (`ru_maxrss`) after training; the difference is what the model,
gradients, optimizer states and activations (and, for the Trainer path, the data pipeline and
Lightning) added. The Trainer path trains on the default corpus with a SentencePiece
vocabulary of 8192 (trained once into the tokenizer cache), T5 with noise_density 0.16
(62 targets).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

D_MODEL, N_LAYERS, N_HEADS, D_FF, VOCAB = 256, 4, 4, 1024, 8192
BATCH, SEQ_LEN, TARGET_LEN, MASK_PROB = 8, 256, 64, 0.15
TASKS = {"gpt": "clm", "bert": "mlm", "t5": "span"}
SIDES = ("hf", "ours", "trainer")
WARMUP_STEPS = 2

Step = Callable[[], None]


def _shape(family: str) -> dict[str, Any]:
    """Our TransformerConfig for `family`: the preset's architecture at the benchmark's shape."""
    from omegaconf import OmegaConf

    from xformers_lab.paths import conf_dir

    preset = OmegaConf.to_container(OmegaConf.load(conf_dir() / "model" / f"{family}.yaml"))
    preset.pop("defaults", None)
    preset.update(d_model=D_MODEL, n_layers=N_LAYERS, n_heads=N_HEADS, d_ff=D_FF, dropout=0.0)
    if family == "t5":
        preset["n_decoder_layers"] = N_LAYERS
    return preset


def _batch(family: str) -> dict[str, torch.Tensor]:
    """Random token ids; for bert the 15% selected positions (the same for both sides)."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(7, VOCAB, (BATCH, SEQ_LEN), generator=gen)
    if family == "gpt":
        return {
            "input_ids": ids,
            "labels": torch.randint(7, VOCAB, (BATCH, SEQ_LEN), generator=gen),
        }
    if family == "t5":
        labels = torch.randint(7, VOCAB, (BATCH, TARGET_LEN), generator=gen)
        decoder_input_ids = torch.cat([torch.zeros_like(labels[:, :1]), labels[:, :-1]], dim=1)
        return {"input_ids": ids, "labels": labels, "decoder_input_ids": decoder_input_ids}
    k = int(MASK_PROB * SEQ_LEN + 0.999)
    positions = torch.rand(BATCH, SEQ_LEN, generator=gen).argsort(dim=1)[:, :k].sort(dim=1).values
    labels = ids.gather(1, positions)
    corrupted = ids.scatter(1, positions, 4)  # <mask>
    full_labels = torch.full_like(ids, -100).scatter(1, positions, labels)
    return {
        "input_ids": corrupted,
        "mask_positions": positions,
        "labels": labels,
        "full_labels": full_labels,
    }


def _ours(family: str, batch: dict[str, torch.Tensor]) -> Step:
    from xformers_lab.core import TransformerConfig, build_model

    model = build_model(TransformerConfig(vocab_size=VOCAB, **_shape(family))).train()

    def loss() -> torch.Tensor:  # exactly what our tasks compute (their summed nats), as a mean
        labels = batch["labels"]
        if family == "gpt":
            return model.summed_nats(batch["input_ids"], labels) / labels.numel()
        if family == "t5":
            decoder_input_ids = batch["decoder_input_ids"]
            nats = model.summed_nats(
                batch["input_ids"], labels, decoder_input_ids=decoder_input_ids
            )
            return nats / labels.numel()
        logits = model.masked_logits(batch["input_ids"], batch["mask_positions"]).flatten(0, 1)
        return F.cross_entropy(logits, labels.flatten())

    return _train_step(model, loss)


def _hf(family: str, batch: dict[str, torch.Tensor]) -> Step:
    import transformers as tf

    common = {"vocab_size": VOCAB, "attn_implementation": "sdpa"}
    if family == "gpt":
        config = tf.GPT2Config(
            n_embd=D_MODEL, n_layer=N_LAYERS, n_head=N_HEADS, n_inner=D_FF, n_positions=1024,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common,
        )  # fmt: skip
        model = tf.GPT2LMHeadModel(config)
        inputs = {"input_ids": batch["input_ids"], "labels": batch["input_ids"]}
    elif family == "bert":
        config = tf.BertConfig(
            hidden_size=D_MODEL, num_hidden_layers=N_LAYERS, num_attention_heads=N_HEADS,
            intermediate_size=D_FF, max_position_embeddings=512, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, **common,
        )  # fmt: skip
        model = tf.BertForMaskedLM(config)
        inputs = {"input_ids": batch["input_ids"], "labels": batch["full_labels"]}
    else:
        config = tf.T5Config(
            d_model=D_MODEL, d_kv=D_MODEL // N_HEADS, d_ff=D_FF, num_layers=N_LAYERS,
            num_decoder_layers=N_LAYERS, num_heads=N_HEADS, feed_forward_proj="gated-gelu",
            dropout_rate=0.0, tie_word_embeddings=False, decoder_start_token_id=0, **common,
        )  # fmt: skip
        model = tf.T5ForConditionalGeneration(config)
        inputs = {"input_ids": batch["input_ids"], "labels": batch["labels"]}
    model.train()
    return _train_step(model, lambda: model(**inputs).loss)


def _train_step(model: torch.nn.Module, loss: Callable[[], torch.Tensor]) -> Step:
    # Fused on both sides: our default (conf/optim/adamw.yaml) and HF Trainer's since torch 2.8.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)

    def step() -> None:
        loss().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _trainer_tokens_per_sec(family: str, steps: int) -> float:
    """Our `train()` as the command line runs it, at the benchmark's shape."""
    sys.path.insert(0, str(Path(__file__).parent))
    from lightning_overhead import trainer_path
    from xformers_lab.cli import compose_config

    shape = _shape(family)
    overrides = [
        f"model={family}",
        f"task={TASKS[family]}",
        *(f"model.{key}={shape[key]}" for key in ("d_model", "n_layers", "n_heads", "d_ff")),
        "tokenizer=spm_unigram",
        f"tokenizer.vocab_size={VOCAB}",
        "data.max_bytes=3000000",
        f"data.seq_len={SEQ_LEN}",
        f"data.batch_size={BATCH}",
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={steps}",
        "trainer.limit_val_batches=1",
        "trainer.progress_bar=false",
        "scheduler.warmup_steps=2",
    ]
    if family == "t5":
        overrides += [f"model.n_decoder_layers={N_LAYERS}", "task.noise_density=0.16"]
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        return trainer_path(compose_config("train", overrides), Path(tmp) / "run")


def worker(side: str, family: str, steps: int) -> dict[str, float]:
    """One measurement, meant to run in a fresh process: tokens/s and peak RSS growth."""
    torch.manual_seed(0)
    if side == "trainer":
        base = _rss()
        tokens_per_sec = _trainer_tokens_per_sec(family, steps)
    else:
        batch = _batch(family)
        base = _rss()
        step = (_hf if side == "hf" else _ours)(family, batch)
        for _ in range(WARMUP_STEPS):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        tokens = batch["input_ids"].numel() + (TARGET_LEN * BATCH if family == "t5" else 0)
        tokens_per_sec = tokens * steps / (time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {"tokens_per_sec": tokens_per_sec, "peak_mib": (peak - base) / 2**20}


def _rss() -> int:
    """Resident set size now, in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _measure(side: str, family: str, steps: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", side, family, "--steps", str(steps)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{side} {family} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps of the raw loops")
    parser.add_argument("--trainer-steps", type=int, default=40, help="steps of the Trainer path")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--worker", nargs=2, metavar=("SIDE", "FAMILY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.steps)))
        return
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    started = time.perf_counter()
    for repeat in range(args.repeats):
        for family in args.families:
            for side in SIDES:
                steps = args.trainer_steps if side == "trainer" else args.steps
                runs.setdefault((family, side), []).append(_measure(side, family, steps))
                print(f"  {family:5s} {side:8s} {runs[family, side][-1]}", flush=True)
        print(f"  repeat {repeat + 1}/{args.repeats} done at {time.perf_counter() - started:.0f} s")
    _print_table(runs, args)


def _print_table(runs: dict[tuple[str, str], list[dict[str, float]]], args: Any) -> None:
    def median(family: str, side: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[family, side])

    print(
        f"\nvs HF transformers: d_model {D_MODEL}, {N_LAYERS} layers, {N_HEADS} heads, d_ff {D_FF},"
        f" vocab {VOCAB}, batch {BATCH}, seq {SEQ_LEN} (t5 targets {TARGET_LEN}); "
        f"medians of {args.repeats} alternating runs; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    header = (
        "| family | HF tokens/s | ours raw | ours Trainer | raw / HF | Trainer / HF | "
        "Trainer / raw | HF peak MiB | ours peak MiB | ours / HF memory | Trainer peak MiB |"
    )
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for family in args.families:
        hf, raw, trainer = (median(family, side, "tokens_per_sec") for side in SIDES)
        hf_mem, raw_mem, trainer_mem = (median(family, side, "peak_mib") for side in SIDES)
        print(
            f"| {family} | {hf:,.0f} | {raw:,.0f} | {trainer:,.0f} | {raw / hf:.2f} | "
            f"{trainer / hf:.2f} | {trainer / raw:.2f} | {hf_mem:,.0f} | {raw_mem:,.0f} | "
            f"{raw_mem / hf_mem:.2f} | {trainer_mem:,.0f} |"
        )
    print("\nall runs (tokens/s):")
    for (family, side), values in runs.items():
        listed = ", ".join(f"{v['tokens_per_sec']:,.0f}" for v in values)
        print(f"  {family:5s} {side:8s} {listed}")
    print("median of the ratios within each repeat (neighbours in time share the machine's load):")
    for family in args.families:
        hf, raw, trainer = ([v["tokens_per_sec"] for v in runs[family, side]] for side in SIDES)
        paired = {
            "raw / HF": statistics.median(r / h for r, h in zip(raw, hf, strict=True)),
            "Trainer / HF": statistics.median(t / h for t, h in zip(trainer, hf, strict=True)),
            "Trainer / raw": statistics.median(t / r for t, r in zip(trainer, raw, strict=True)),
        }
        print(f"  {family:5s} " + ", ".join(f"{k} {v:.2f}" for k, v in paired.items()))
    print(
        "peak MiB = peak RSS minus RSS before the model was built (the Trainer path: before the"
        " corpus, tokenizer and Lightning; it includes them)"
    )


if __name__ == "__main__":
    main()
