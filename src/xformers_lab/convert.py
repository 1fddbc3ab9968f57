"""`python -m xformers_lab.convert from-hf <hf_dir> <out.ckpt> | to-hf <ckpt> <hf_dir>`.

    python -m xformers_lab.convert from-hf ./gpt2 gpt2.ckpt     # then generate, fine-tune ...
    python -m xformers_lab.convert to-hf runs/x/checkpoints/best.ckpt ./exported

from-hf reads a local Hugging Face model directory (config.json, safetensors or
pytorch_model.bin, and its tokenizer) of GPT2LMHeadModel, BertForMaskedLM,
T5ForConditionalGeneration or LlamaForCausalLM, and writes a checkpoint in the format training
writes. to-hf writes config.json and model.safetensors that transformers' Auto classes load.
"""

from __future__ import annotations

import sys

from xformers_lab.errors import UserError, reported_user_errors
from xformers_lab.interop import convert_from_hf, convert_to_hf

USAGE = "usage: python -m xformers_lab.convert from-hf <hf_dir> <out.ckpt> | to-hf <ckpt> <hf_dir>"
COMMANDS = {"from-hf": convert_from_hf, "to-hf": convert_to_hf}


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
