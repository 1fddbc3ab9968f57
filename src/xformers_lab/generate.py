"""`python -m xformers_lab.generate ckpt=<path> prompt="..." [options]`: continue prompts.

    python -m xformers_lab.generate ckpt=run/checkpoints/best.ckpt prompt="def main(" \\
        max_new_tokens=100 do_sample=true temperature=0.8 top_p=0.9 num_samples=3 seed=1
    python -m xformers_lab.generate ckpt=t5.ckpt prompt="The <extra_id_0> sat on the mat."
    python -m xformers_lab.generate ckpt=... prompt_file=prompts.txt num_beams=4
    python -m xformers_lab.generate ckpt=sft.ckpt prompt="Reverse: abc" chat=false

Options are the fields of `GenerationConfig` (max_new_tokens, do_sample, temperature, top_k,
top_p, repetition_penalty, num_beams, length_penalty, num_samples, stop, seed, use_cache),
plus `prompt_file` (one prompt per line), `device` and `chat`. Prompts are framed as the
checkpoint trained: a chat model's template (unless `chat=false`), a seq2seq source prefix.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from xformers_lab.errors import UserError, reported_user_errors
from xformers_lab.inference.generation import GenerationConfig
from xformers_lab.inference.loading import load
from xformers_lab.typed_config import build

VERBATIM = ("ckpt", "prompt", "prompt_file", "stop", "device")
"""Keys whose values are text exactly as typed (a prompt keeps its spaces; `1` stays "1")."""


@dataclass(frozen=True, kw_only=True)
class GenerateArgs:
    """What to load and which prompts to continue."""

    ckpt: str
    """Checkpoint of a decoder (gpt, llama) or encoder-decoder (t5)."""
    prompt: str | None = None
    """One prompt."""
    prompt_file: str | None = None
    """A file of prompts, one per line (batched with left padding)."""
    device: str = "cpu"
    """Where to run: cpu, cuda, cuda:1 ..."""
    chat: bool = True
    """A checkpoint fine-tuned on chat messages reads each prompt as a user turn of its chat
    template; false passes the prompt as plain text."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    with reported_user_errors():
        args, gen = parse(sys.argv[1:] if argv is None else argv)
        prompts = read_prompts(args)
        lab = load(args.ckpt, device=args.device)
        if lab.config.arch == "encoder":
            raise UserError(f"{args.ckpt} is an encoder (task={lab.task}); use fill_mask")
        results = lab.complete(prompts, gen, chat=args.chat)
        for prompt, completions in zip(prompts, results, strict=True):
            for i, text in enumerate(completions):
                head = f"[{i + 1}/{len(completions)}] " if len(completions) > 1 else ""
                print(f"{head}{prompt}{text}" if lab.config.arch == "decoder" else f"{head}{text}")
                print("-" * 40)


def parse(argv: list[str]) -> tuple[GenerateArgs, GenerationConfig]:
    """key=value arguments -> (what to run, how to generate), with one-line errors."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise UserError(f"expected key=value arguments, got {bad[0]!r}; e.g. ckpt=... prompt=...")
    values: dict[str, Any] = {}
    for arg in argv:
        key, _, raw = arg.partition("=")
        values[key] = raw if key in VERBATIM else yaml.safe_load(raw) if raw else None
    if isinstance(values.get("stop"), str):
        values["stop"] = [values["stop"]]
    own = {f.name for f in fields(GenerateArgs)}
    args = build(GenerateArgs, {k: v for k, v in values.items() if k in own}, "generate")
    gen = build(GenerationConfig, {k: v for k, v in values.items() if k not in own}, "generate")
    if (args.prompt is None) == (args.prompt_file is None):
        raise UserError("give exactly one of prompt=... or prompt_file=...")
    return args, gen


def read_prompts(args: GenerateArgs) -> list[str]:
    if args.prompt is not None:
        return [args.prompt]
    path = Path(args.prompt_file or "")
    if not path.is_file():
        raise UserError(f"prompt_file={path} does not exist")
    prompts = [line for line in path.read_text().splitlines() if line.strip()]
    if not prompts:
        raise UserError(f"prompt_file={path} holds no prompt")
    return prompts


if __name__ == "__main__":
    main()
