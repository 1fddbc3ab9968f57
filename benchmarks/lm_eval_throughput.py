"""Requests per second on lm-evaluation-harness: `--model xformers_lab` against the harness's own
`--model hf` on the same weights (a random GPT-2 exported with `convert to-hf`), for
loglikelihood (xlab_python_mc) and generate_until (xlab_python_gen). Prints a table; asserts
nothing. Pin threads for a fair figure on a shared machine:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lm_eval_throughput.py [--limit 100]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers
from lm_eval import simple_evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from xformers_lab.evaluation import SHIPPED_TASKS
from xformers_lab.evaluation.harness import XformersLabLM
from xformers_lab.interop import convert_from_hf, convert_to_hf

TASKS = {"loglikelihood": "xlab_python_mc", "generate_until": "xlab_python_gen"}


def build_gpt2(root: Path, vocab_size: int) -> Path:
    """A random GPT-2 (4 layers, 256 wide) with a byte-level BPE trained on stdlib sources."""
    sources = [
        p.read_text(errors="ignore") for p in sorted(Path(logging.__file__).parent.glob("*.py"))
    ]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(
        sources,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    end = "<|endoftext|>"
    hf_tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=end, eos_token=end, unk_token=end
    )
    config = transformers.GPT2Config(
        vocab_size=len(hf_tokenizer), n_positions=512, n_embd=256, n_layer=4, n_head=8,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    path = root / "hf"
    transformers.GPT2LMHeadModel(config).eval().save_pretrained(path)
    hf_tokenizer.save_pretrained(path)
    return path


def timed(lm, method: str, log: dict[str, tuple[int, float]]) -> None:
    """Record (requests, seconds) of every call of `lm.<method>`."""
    call: Callable = getattr(lm, method)

    def wrapper(requests, *args, **kwargs):
        start = time.perf_counter()
        out = call(requests, *args, **kwargs)
        n, seconds = log.get(method, (0, 0.0))
        log[method] = (n + len(requests), seconds + time.perf_counter() - start)
        return out

    setattr(lm, method, wrapper)


def measure(lm, limit: int, batch_size: int) -> dict[str, tuple[int, float]]:
    log: dict[str, tuple[int, float]] = {}
    for method in TASKS:
        timed(lm, method, log)
    manager = TaskManager(include_path=str(SHIPPED_TASKS))
    for task in TASKS.values():
        simple_evaluate(
            model=lm, tasks=[task], limit=limit, task_manager=manager, bootstrap_iters=0
        )
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100, help="documents per task")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=2000)
    args = parser.parse_args()
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ckpt = convert_from_hf(build_gpt2(root, args.vocab), root / "gpt2.ckpt")
        exported = convert_to_hf(ckpt, root / "exported")
        ours = XformersLabLM(ckpt=str(ckpt), batch_size=args.batch_size)
        hf = HFLM(
            pretrained=str(exported), device="cpu", dtype="float32", batch_size=args.batch_size
        )
        figures = {"xformers_lab": measure(ours, args.limit, args.batch_size)}
        figures["hf"] = measure(hf, args.limit, args.batch_size)
    print(
        f"\nlm-eval throughput, random GPT-2 (4x256, vocab {args.vocab}), batch_size="
        f"{args.batch_size}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"
    )
    print(f"{'request type':<16} {'task':<18} {'ours req/s':>11} {'hf req/s':>9} {'speedup':>8}")
    for method, task in TASKS.items():
        rates = {name: n / s for name, log in figures.items() for n, s in [log[method]]}
        speedup = rates["xformers_lab"] / rates["hf"]
        print(
            f"{method:<16} {task:<18} {rates['xformers_lab']:>11.1f} {rates['hf']:>9.1f}"
            f" {speedup:>7.2f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
