"""`python -m xformers_lab.convert from-hf <hf_dir> <out.ckpt> | to-hf <ckpt> <hf_dir> |
consolidate <sharded_ckpt_dir> <out.ckpt>`.

    python -m xformers_lab.convert from-hf ./gpt2 gpt2.ckpt     # then generate, fine-tune ...
    python -m xformers_lab.convert to-hf runs/x/checkpoints/best.ckpt ./exported
    python -m xformers_lab.convert consolidate runs/x/checkpoints/last.ckpt last-full.ckpt

from-hf reads a local Hugging Face model directory (config.json, safetensors or
pytorch_model.bin, and its tokenizer) of GPT2LMHeadModel, BertForMaskedLM,
T5ForConditionalGeneration or LlamaForCausalLM, and writes a checkpoint in the format training
writes. to-hf writes config.json and model.safetensors that transformers' Auto classes load.
consolidate turns a sharded checkpoint directory (trainer=fsdp) into one file.
"""

from __future__ import annotations

import sys
from pathlib import Path

from xformers_lab.errors import UserError, reported_user_errors
from xformers_lab.interop import convert_from_hf, convert_to_hf

USAGE = (
    "usage: python -m xformers_lab.convert from-hf <hf_dir> <out.ckpt> | to-hf <ckpt> <hf_dir> | "
    "consolidate <sharded_ckpt_dir> <out.ckpt>"
)


def consolidate(source: str, target: str) -> Path:
    """`training.consolidate`, imported for this command only: it reads the shards through
    Lightning, which the other commands do without."""
    from xformers_lab.training.consolidate import consolidate as gather

    return gather(source, target)


COMMANDS = {"from-hf": convert_from_hf, "to-hf": convert_to_hf, "consolidate": consolidate}


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    with reported_user_errors():
        args = sys.argv[1:] if argv is None else argv
        if len(args) != 3 or args[0] not in COMMANDS:
            raise UserError(f"expected a command and two paths, got {' '.join(args)!r}; {USAGE}")
        command, source, target = args
        written = COMMANDS[command](source, target)
        print(f"wrote {written}")


if __name__ == "__main__":
    main()
