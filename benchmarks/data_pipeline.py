"""Data pipeline figures: sentencepiece training time, tokenize + pack throughput, and the share
of training step time spent waiting for data in the default recipes.

    python benchmarks/data_pipeline.py [PATH] [--vocab-size 8192] [--steps 60] [--skip-recipes]

PATH defaults to ../shared/data/tinyshakespeare.txt. Every cache (tokenizer models, tokenized
splits) lives in a temporary directory, so each figure is measured cold unless it says cached.

Measured on 2 vCPUs (torch 2.13 CPU) while other jobs kept the load average near 9, so step times
are several times slower than on a quiet machine; data waits are slowed alike:

    spm_unigram 8k on tinyshakespeare (1.1 MB): 2.5-5.7 s to train, 0.03 s from the cache
    spm_bpe 8k: 0.5 s. Tokenize + pack, one process: spm_unigram 0.9-1.5 M tokens/s, char
    3.9-6.8 M, byte 5-9 M; a cached split loads at 40-140 M tokens/s; streamed 0.25-1 M tokens/s
    (mostly datasets' streaming reader). Waiting for data: 0.04-0.05% of step time for the
    default run (plain, streamed, document-masked, spm on shakespeare), 0.53% for
    shakespeare_char_cpu (the smallest model), 0.8-3 ms per batch.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import datasets
import lightning as L
import torch

DEFAULT_PATH = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tinyshakespeare.txt"
)
SKIP_STEPS = 5


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def spm_training(path: Path, vocab_size: int) -> None:
    from xformers_lab.data.config import TokenizerConfig
    from xformers_lab.data.tokenizers import build_tokenizer

    text = path.read_text(encoding="utf-8")
    print(f"\n1. SentencePiece training on {path.name} ({len(text.encode()):,} bytes)")
    for kind in ("spm_unigram", "spm_bpe"):
        cfg = TokenizerConfig(kind=kind, vocab_size=vocab_size)
        tok, cold = timed(lambda cfg=cfg: build_tokenizer(cfg, [text]))
        again, warm = timed(lambda cfg=cfg: build_tokenizer(cfg, [text]))
        assert again.from_cache and again.fingerprint() == tok.fingerprint()
        chars_per_token = len(text) / len(tok.encode(text))
        print(
            f"   {kind:<12} vocab {tok.vocab_size:>6,}: trained in {cold:6.2f} s "
            f"(second run, from the cache: {warm:.2f} s); {chars_per_token:.2f} chars/token"
        )


def tokenize_and_pack(path: Path, vocab_size: int, num_proc: int | None) -> None:
    from xformers_lab.data.config import DataConfig, TokenizerConfig
    from xformers_lab.data.corpora import load_corpus
    from xformers_lab.data.packing import join_documents, tokenize
    from xformers_lab.data.streaming import StreamingWindows
    from xformers_lab.data.tokenizers import build_tokenizer

    print(f"\n2. Tokenize + pack throughput (datasets.map, num_proc={num_proc or 1}), train split")
    for sample_by in ("paragraph", "document"):
        corpus = load_corpus(DataConfig(source="text", path=str(path), sample_by=sample_by))
        streamed = None  # a streamed corpus holds out whole documents: it needs several
        if sample_by != "document":
            cfg = DataConfig(source="text", path=str(path), sample_by=sample_by, streaming=True)
            streamed = load_corpus(cfg)
        train = corpus["train"]
        for kind in ("spm_unigram", "char", "byte"):
            options = {"vocab_size": vocab_size} if kind.startswith("spm") else {}
            tok = build_tokenizer(TokenizerConfig(kind=kind, **options), train["text"])
            pack = lambda tok=tok, train=train: join_documents(  # noqa: E731
                tokenize(train, tok, num_proc), tok.eos_id
            )
            stream, cold = timed(pack)
            _, warm = timed(pack)  # the tokenized split comes from the disk cache
            line = (
                f"   {sample_by:>9}s ({len(train):>5,}) {kind:<12} {len(stream):>9,} tokens: "
                f"{len(stream) / cold:>11,.0f} tokens/s cold, {len(stream) / warm:>13,.0f} cached"
            )
            if streamed is not None:
                windows = StreamingWindows(
                    streamed["train"], tok, lambda rows: {"input_ids": rows},
                    block_len=257, stride=256, batch_size=16, seed=0, shift=True,
                    shuffle_buffer=0, repeat=False,
                )  # fmt: skip
                n_windows, streaming = timed(
                    lambda windows=windows: sum(1 for _ in windows.windows(windows.documents, 0))
                )
                line += f"; streamed {n_windows * 256 / streaming:>9,.0f} tokens/s"
            print(line)


class StepTimer(L.Callback):
    """Wall time between consecutive training batch starts, validation excluded."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.validation = 0.0
        self._val_start = 0.0
        self.val_before: list[float] = []

    def on_train_batch_start(self, *args: Any) -> None:
        self.starts.append(time.perf_counter())
        self.val_before.append(self.validation)

    def on_validation_start(self, *args: Any) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, *args: Any) -> None:
        self.validation += time.perf_counter() - self._val_start


def data_wait(recipes: dict[str, list[str]], steps: int) -> None:
    import xformers_lab.train as train_module
    from xformers_lab.cli import compose_config
    from xformers_lab.data.datamodule import TextDataModule

    print(f"\n3. Share of training step time spent waiting for data ({steps} steps per recipe)")
    waits: list[float] = []
    real_loader, real_build = TextDataModule.train_dataloader, train_module.build_trainer
    timer = StepTimer()

    def train_dataloader(self: TextDataModule) -> Any:
        loader = real_loader(self)
        base = type(loader)

        class TimedLoader(base):  # type: ignore[misc, valid-type]
            def __iter__(self) -> Iterator[Any]:
                batches = base.__iter__(self)
                while True:
                    start = time.perf_counter()
                    try:
                        batch = next(batches)
                    except StopIteration:
                        return
                    waits.append(time.perf_counter() - start)
                    yield batch

        loader.__class__ = TimedLoader
        return loader

    def build_trainer(cfg: Any, run_dir: Path, *, loggers: Any, callbacks: Any) -> L.Trainer:
        return real_build(cfg, run_dir, loggers=loggers, callbacks=[*callbacks, timer])

    TextDataModule.train_dataloader = train_dataloader  # type: ignore[method-assign]
    train_module.build_trainer = build_trainer
    common = [
        f"trainer.max_steps={steps}",
        f"trainer.val_check_interval={steps}",
        "trainer.limit_val_batches=2",
        "trainer.progress_bar=false",
        "scheduler.warmup_steps=10",
        "logger={}",
    ]
    with tempfile.TemporaryDirectory() as runs:
        for name, overrides in recipes.items():
            waits.clear()
            timer.__init__()
            cfg = compose_config("train", [*common, *overrides])
            summary = train_module.train(cfg, Path(runs) / name)
            n = len(timer.starts)
            total = timer.starts[-1] - timer.starts[SKIP_STEPS]
            total -= timer.val_before[-1] - timer.val_before[SKIP_STEPS]
            waited = sum(waits[SKIP_STEPS + 1 : n])  # fetches of batches SKIP+1 .. n-1
            per_step = 1e3 * total / (n - 1 - SKIP_STEPS)
            print(
                f"   {name:<34} {100 * waited / total:5.2f}% of {per_step:6.1f} ms/step waiting "
                f"({1e3 * waited / (n - 1 - SKIP_STEPS):.2f} ms/batch); "
                f"{summary['train_tokens_per_sec']:,.0f} tokens/s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--num-proc", type=int, default=None)
    parser.add_argument("--skip-recipes", action="store_true")
    parser.add_argument("--skip-tokenizers", action="store_true")
    args = parser.parse_args()
    path = args.path.resolve()
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist; pass the corpus path as the argument")
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["XFORMERS_LAB_CACHE"] = str(Path(cache) / "xformers_lab")
        datasets.config.HF_DATASETS_CACHE = Path(cache) / "datasets"
        if not args.skip_tokenizers:
            spm_training(path, args.vocab_size)
            tokenize_and_pack(path, args.vocab_size, args.num_proc)
        if args.skip_recipes:
            return
        shakespeare = [f"data.path={path}"]
        data_wait(
            {
                "default (gpt, pystdlib, byte)": [],
                "default, data.streaming=true": ["data.streaming=true"],
                "default, data.document_mask=true": ["data.document_mask=true"],
                "shakespeare_char_cpu": ["experiment=shakespeare_char_cpu", *shakespeare],
                "gpt + spm_unigram on shakespeare": [
                    "data=text", "tokenizer=spm_unigram", *shakespeare,
                ],
            },
            args.steps,
        )  # fmt: skip


if __name__ == "__main__":
    main()
