"""nanoGPT's CPU "baby GPT" on tinyshakespeare, side by side with ours: a re-implementation of
karpathy/nanoGPT's `model.py` and `train.py` (MIT) at its README's CPU command, and
`experiment=shakespeare_char_cpu` through our `train()`, alternated per seed in one run.

    python benchmarks/vs_nanogpt.py [--data ../shared/data/tinyshakespeare.txt] \
        [--seeds 1337 1 2] [--nanogpt /path/to/nanoGPT-checkout]

The reference follows nanoGPT step for step, RNG draws included: `torch.manual_seed(seed)`, the
char vocabulary of the whole file, the 90/10 split by position, random windows
(`torch.randint(len(data) - block_size, (batch_size,))`), warmup then cosine lr, clipping at 1.0,
and every 250 iterations (0 to 2000, before that iteration's step) `estimate_loss` over 20 random
batches of each split; its best_val_loss is the lowest of those estimates, as nanoGPT reports it.
At the same moments the script also measures the reference model as our validation does: every
target of the held-out split, in non-overlapping windows of 64 (that measurement touches no RNG
and is left out of the reference's wall time). Ours reports the lowest whole-split loss of its
validations at steps 250 to 2000. Each run is a fresh subprocess; the runs alternate (reference,
ours, per seed) so drift in machine load hits both sides alike. Tokens/s: training only, after the
first 10 steps, evaluation time excluded (as our summary counts it). Process seconds: each
side's whole process, start to exit, ours through `python -m xformers_lab.train` as typed (config
check, Hydra, imports, data, training, validation, checkpoints, summary). With `--nanogpt`, a
checkout of nanoGPT's own `train.py` is timed the same way once per seed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"

# nanoGPT's README CPU command: config/train_shakespeare_char.py --device=cpu --compile=False
# --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4
# --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0
README_CPU_ARGS = [
    "--device=cpu", "--compile=False", "--eval_iters=20", "--log_interval=1",
    "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
    "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0",
]  # fmt: skip
N_LAYER, N_HEAD, N_EMBD, BLOCK_SIZE, BATCH_SIZE = 4, 4, 128, 64, 12
MAX_ITERS, LR_DECAY_ITERS, WARMUP_ITERS = 2000, 2000, 100
LEARNING_RATE, MIN_LR, WEIGHT_DECAY, BETAS, GRAD_CLIP = 1e-3, 1e-4, 0.1, (0.9, 0.99), 1.0
EVAL_INTERVAL, EVAL_ITERS = 250, 20
SKIP_STEPS = 10  # throughput is counted from here, as our RunStats does
SIDES = ("nanogpt", "ours")


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (nanoGPT runs without)."""

    def __init__(self, ndim: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    """Fused q/k/v projection, SDPA with its causal flag, output projection."""

    def __init__(self) -> None:
        super().__init__()
        self.c_attn = nn.Linear(N_EMBD, 3 * N_EMBD, bias=False)
        self.c_proj = nn.Linear(N_EMBD, N_EMBD, bias=False)
        self.attn_dropout, self.resid_dropout = nn.Dropout(0.0), nn.Dropout(0.0)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C)
        B, T, C = x.size()
        q, k, v = (
            t.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2)  # (B, nh, T, hs)
            for t in self.c_attn(x).split(N_EMBD, dim=2)
        )
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c_fc = nn.Linear(N_EMBD, 4 * N_EMBD, bias=False)
        self.gelu = nn.GELU()  # exact (erf) form
        self.c_proj = nn.Linear(4 * N_EMBD, N_EMBD, bias=False)
        self.dropout = nn.Dropout(0.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln_1, self.attn = LayerNorm(N_EMBD, bias=False), CausalSelfAttention()
        self.ln_2, self.mlp = LayerNorm(N_EMBD, bias=False), MLP()

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """nanoGPT's GPT: token + learned position embeddings, pre-norm blocks, final norm, a head
    tied to the token embedding; modules built and initialised in nanoGPT's order."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(vocab_size, N_EMBD),
                "wpe": nn.Embedding(BLOCK_SIZE, N_EMBD),
                "drop": nn.Dropout(0.0),
                "h": nn.ModuleList(Block() for _ in range(N_LAYER)),
                "ln_f": LayerNorm(N_EMBD, bias=False),
            }
        )
        self.lm_head = nn.Linear(N_EMBD, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * N_LAYER))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: Tensor, targets: Tensor) -> Tensor:
        """Mean next-token cross-entropy of (B, T) inputs against (B, T) targets."""
        pos = torch.arange(0, idx.size(1), dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    def configure_optimizers(self) -> torch.optim.AdamW:
        """Decay every parameter with two or more dimensions (embeddings too), nothing else."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=LEARNING_RATE, betas=BETAS)


def char_splits(path: Path) -> tuple[dict[str, Tensor], int]:
    """shakespeare_char's prepare.py: vocabulary of the whole text, first 90% trains."""
    text = path.read_text(encoding="utf-8")
    stoi = {ch: i for i, ch in enumerate(sorted(set(text)))}
    ids = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(len(ids) * 0.9)
    return {"train": ids[:n], "val": ids[n:]}, len(stoi)


def get_batch(data: Tensor) -> tuple[Tensor, Tensor]:
    ix = torch.randint(len(data) - BLOCK_SIZE, (BATCH_SIZE,))
    x = torch.stack([data[i : i + BLOCK_SIZE] for i in ix])
    y = torch.stack([data[i + 1 : i + 1 + BLOCK_SIZE] for i in ix])
    return x, y


def get_lr(it: int) -> float:
    if it < WARMUP_ITERS:
        return LEARNING_RATE * (it + 1) / (WARMUP_ITERS + 1)
    if it > LR_DECAY_ITERS:
        return MIN_LR
    decay_ratio = (it - WARMUP_ITERS) / (LR_DECAY_ITERS - WARMUP_ITERS)
    return MIN_LR + 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) * (LEARNING_RATE - MIN_LR)


@torch.no_grad()
def estimate_loss(model: GPT, splits: dict[str, Tensor]) -> dict[str, float]:
    """nanoGPT's estimate: mean loss of EVAL_ITERS random batches per split (train first)."""
    model.eval()
    out = {}
    for split in ("train", "val"):
        losses = torch.tensor([model(*get_batch(splits[split])).item() for _ in range(EVAL_ITERS)])
        out[split] = losses.mean().item()  # float32, as nanoGPT's torch.zeros(eval_iters)
    model.train()
    return out


@torch.no_grad()
def whole_split_loss(model: GPT, data: Tensor, batch_size: int = 128) -> float:
    """Our validation's figure: every target of `data`, in windows of BLOCK_SIZE + 1 tokens
    every BLOCK_SIZE (non-overlapping targets); no random draws."""
    model.eval()
    starts = torch.arange(0, len(data) - BLOCK_SIZE, BLOCK_SIZE)
    rows = data[starts[:, None] + torch.arange(BLOCK_SIZE + 1)]  # (N, BLOCK_SIZE + 1)
    nats = 0.0
    for batch in rows.split(batch_size):
        inputs, targets = batch[:, :-1].contiguous(), batch[:, 1:].contiguous()
        nats += model(inputs, targets).item() * targets.numel()
    model.train()
    return nats / (len(rows) * BLOCK_SIZE)


def run_nanogpt(data: Path, seed: int) -> dict[str, Any]:
    """nanoGPT's training loop; returns its best_val_loss and the whole-split losses."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    splits, vocab_size = char_splits(data)
    model = GPT(vocab_size)
    optimizer = model.configure_optimizers()
    X, Y = get_batch(splits["train"])
    best_val_loss, whole = 1e9, {}
    iter_num, clock, paused, extra_seconds = 0, 0.0, 0.0, 0.0
    while True:
        for group in optimizer.param_groups:
            group["lr"] = get_lr(iter_num)
        if iter_num == SKIP_STEPS:
            clock, paused = time.perf_counter(), 0.0  # steady state starts
        if iter_num % EVAL_INTERVAL == 0:
            tick = time.perf_counter()
            best_val_loss = min(best_val_loss, estimate_loss(model, splits)["val"])
            tock = time.perf_counter()
            whole[iter_num] = whole_split_loss(model, splits["val"])  # ours, not nanoGPT's work
            extra_seconds += time.perf_counter() - tock
            paused += time.perf_counter() - tick
        loss = model(X, Y)
        X, Y = get_batch(splits["train"])  # nanoGPT fetches the next batch before backward
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        iter_num += 1
        if iter_num > MAX_ITERS:
            break
    train_seconds = time.perf_counter() - clock - paused
    best_step = min(whole, key=whole.get)
    return {
        "best_val_loss": best_val_loss,
        "whole_val_loss": whole[best_step],
        "whole_val_step": best_step,
        "wall_seconds": time.perf_counter() - started - extra_seconds,
        "tokens_per_sec": (MAX_ITERS + 1 - SKIP_STEPS) * BATCH_SIZE * BLOCK_SIZE / train_seconds,
    }


def run_ours(data: Path, seed: int) -> dict[str, Any]:
    """`python -m xformers_lab.train experiment=shakespeare_char_cpu`, as a user types it (its
    own config check, Hydra, then the run); reads the run's summary.json."""
    from xformers_lab import train

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        sys.argv = [
            "xformers_lab.train",
            "experiment=shakespeare_char_cpu",
            f"data.path={data}",
            f"seed={seed}",
            "trainer.progress_bar=false",
            f"hydra.run.dir={run_dir}",
        ]
        train.main()
        summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "best_val_loss": summary["best_val_loss"],
        "best_val_step": summary["best_val_step"],
        "wall_seconds": summary["wall_seconds"],
        "tokens_per_sec": summary["train_tokens_per_sec"],
    }


def run_checkout(checkout: Path, data: Path) -> dict[str, Any]:
    """nanoGPT's own `train.py` at its README CPU command, in a checkout of karpathy/nanoGPT:
    `data/shakespeare_char/prepare.py` first (given our copy of the text, it downloads
    nothing), then training. Returns the last "val loss" it printed."""
    prepared = checkout / "data" / "shakespeare_char"
    if not (prepared / "train.bin").exists():
        (prepared / "input.txt").write_text(data.read_text())
        subprocess.run([sys.executable, "prepare.py"], cwd=prepared, check=True)
    command = [sys.executable, "train.py", "config/train_shakespeare_char.py", *README_CPU_ARGS]
    done = subprocess.run(command, cwd=checkout, capture_output=True, text=True, check=True)
    losses = re.findall(r"val loss ([0-9.]+)", done.stdout)
    return {"best_val_loss": min(map(float, losses))}


def _measure(side: str, data: Path, seed: int) -> dict[str, Any]:
    """One side's run in a fresh process; `process_seconds` is its whole life, start to exit."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        side,
        "--data",
        str(data),
        "--seeds",
        str(seed),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{side} seed {seed} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_seconds": seconds}


def _measure_checkout(checkout: Path, data: Path) -> dict[str, Any]:
    started = time.perf_counter()
    result = run_checkout(checkout, data)
    return {**result, "process_seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="tinyshakespeare.txt")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1337, 1, 2])
    parser.add_argument(
        "--nanogpt",
        type=Path,
        help="a checkout of karpathy/nanoGPT: its own train.py is timed too, once per seed",
    )
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = args.data.resolve()
    if args.worker:
        run = run_nanogpt if args.worker == "nanogpt" else run_ours
        result = run(data, args.seeds[0])
        print(json.dumps(result))  # the last line: read by the parent
        return
    runs: dict[int, dict[str, dict[str, Any]]] = {}
    started = time.perf_counter()
    for seed in args.seeds:
        for side in SIDES:
            runs.setdefault(seed, {})[side] = _measure(side, data, seed)
            print(f"  seed {seed:5d} {side:8s} {runs[seed][side]}", flush=True)
        if args.nanogpt:
            runs[seed]["checkout"] = _measure_checkout(args.nanogpt.resolve(), data)
            print(f"  seed {seed:5d} checkout {runs[seed]['checkout']}", flush=True)
    print(f"  done in {time.perf_counter() - started:.0f} s")
    _print_table(runs)
    _print_process_times(runs)


def _print_table(runs: dict[int, dict[str, dict[str, Any]]]) -> None:
    print(
        f"\nvs nanoGPT, shakespeare_char CPU baby GPT ({N_LAYER} layers, {N_HEAD} heads, "
        f"d_model {N_EMBD}, context {BLOCK_SIZE}, batch {BATCH_SIZE}, {MAX_ITERS} iterations); "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    header = (
        "| seed | nanoGPT best_val_loss (20 batches) | nanoGPT whole val | ours whole val | "
        "ours - nanoGPT (whole val) | nanoGPT wall s | ours wall s | nanoGPT tokens/s | "
        "ours tokens/s |"
    )
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    rows = [_row(runs[seed]) for seed in runs]
    for seed, row in zip(runs, rows, strict=True):
        print(_format(str(seed), row))
    means = [statistics.fmean(column) for column in zip(*rows, strict=True)]
    print(_format("**mean**", means))
    steps = {
        seed: (r["nanogpt"]["whole_val_step"], r["ours"]["best_val_step"])
        for seed, r in runs.items()
    }
    print(f"best whole-val step (nanoGPT, ours) per seed: {steps}")


def _print_process_times(runs: dict[int, dict[str, dict[str, Any]]]) -> None:
    """Start to exit of each process: imports, data, training, validation, checkpoints, summary."""
    print("\n| seed | nanoGPT (re-implemented) process s | ours process s | ours / nanoGPT |")
    print("|---|---|---|---|")
    for seed, run in runs.items():
        ref, ours = run["nanogpt"]["process_seconds"], run["ours"]["process_seconds"]
        print(f"| {seed} | {ref:.1f} | {ours:.1f} | {ours / ref:.3f} |")
        if "checkout" in run:
            real = run["checkout"]["process_seconds"]
            print(f"| {seed} (nanoGPT's own train.py) | {real:.1f} | {ours:.1f} | "
                  f"{ours / real:.3f} |")  # fmt: skip


def _row(run: dict[str, dict[str, Any]]) -> list[float]:
    ref, ours = run["nanogpt"], run["ours"]
    return [
        ref["best_val_loss"],
        ref["whole_val_loss"],
        ours["best_val_loss"],
        ours["best_val_loss"] - ref["whole_val_loss"],
        ref["wall_seconds"],
        ours["wall_seconds"],
        ref["tokens_per_sec"],
        ours["tokens_per_sec"],
    ]


def _format(label: str, row: list[float]) -> str:
    losses = " | ".join(f"{v:.4f}" for v in row[:3])
    return (
        f"| {label} | {losses} | {row[3]:+.4f} | {row[4]:.0f} | {row[5]:.0f} | "
        f"{row[6]:,.0f} | {row[7]:,.0f} |"
    )


if __name__ == "__main__":
    main()
