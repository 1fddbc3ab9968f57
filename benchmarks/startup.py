"""Time to the first useful line: how long a mistyped command line takes to be refused, and how
long `generate` takes to print its first completion from a default-sized checkpoint, each as a
fresh process (median of several runs), with the modules whose imports cost the most
(`python -X importtime`).

    python benchmarks/startup.py                      # this checkout
    python benchmarks/startup.py --src /old/checkout/src --repeats 5   # another one, to compare

The checkpoint is a randomly initialised default `model=gpt` (byte tokenizer), as `make train`
writes it: its weights do not matter for the time.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "unknown option (model=gtp)": ["xformers_lab.train", "model=gtp"],
    "bad value (d_model=100 n_heads=3)": [
        "xformers_lab.train",
        "model.d_model=100",
        "model.n_heads=3",
    ],
    "generate 20 tokens": [
        "xformers_lab.generate",
        "ckpt={ckpt}",
        "prompt=def main(",
        "max_new_tokens=20",
    ],
}


def default_checkpoint(directory: Path) -> Path:
    """A random default GPT checkpoint, in the format training writes."""
    from xformers_lab import checkpoints
    from xformers_lab.cli import compose_config
    from xformers_lab.core import build_model
    from xformers_lab.data.tokenizers import ByteTokenizer
    from xformers_lab.settings import resolve_settings

    tokenizer = ByteTokenizer(n_sentinels=100)
    config = resolve_settings(compose_config("train", [])).model_config(tokenizer.vocab_size)
    model = build_model(config)
    payload = checkpoints.Payload(task="clm", model_config=config, tokenizer=tokenizer.state_dict())
    weights = {f"model.{k}": v for k, v in model.state_dict().items()}
    return checkpoints.write(directory / "default.ckpt", weights, payload)


def timed(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", *args], env=env, cwd=cwd, capture_output=True, text=True
    )
    return time.perf_counter() - start, (done.stdout + done.stderr).strip().splitlines()[0]


def heaviest_imports(args: list[str], env: dict[str, str], cwd: Path, top: int) -> list[str]:
    """The top-level packages with the largest cumulative import time."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    costs: dict[str, int] = {}
    for line in done.stderr.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if found and len(found.group(2)) <= 1:  # a top-level import
            costs[found.group(3)] = int(found.group(1))
    ranked = sorted(costs.items(), key=lambda item: -item[1])[:top]
    return [f"{name} {us / 1e6:.2f} s" for name, us in ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, help="a checkout's src/ to time instead of this one")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--top", type=int, default=5, help="heaviest imports to list")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if args.src:
        env["PYTHONPATH"] = str(args.src.resolve())
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        ckpt = default_checkpoint(cwd)
        print(f"{'command':<36} {'median s':>9} {'min s':>7}  first line / heaviest imports")
        for name, command in COMMANDS.items():
            argv = [a.format(ckpt=ckpt) for a in command]
            runs = [timed(argv, env, cwd) for _ in range(args.repeats)]
            seconds = [s for s, _ in runs]
            first = runs[0][1][:70]
            print(f"{name:<36} {statistics.median(seconds):>9.2f} {min(seconds):>7.2f}  {first}")
            print(f"{'':<55}{', '.join(heaviest_imports(argv, env, cwd, args.top))}")


if __name__ == "__main__":
    main()
