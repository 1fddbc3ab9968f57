"""Decode speed: greedy tokens/s for 256 new tokens with and without our KV cache, and against
Hugging Face transformers' `generate()` on a GPT-2 of the same shape, in one process.

    python benchmarks/generation.py [--new-tokens 256] [--repeats 3] [--batch 1]

The model is the default `gpt` preset shape (4 layers, 4 heads, d_model 192, byte vocabulary
363 padded to 384) with random weights; both libraries run it in fp32 on the same threads.
Until HF weight import exists the two models hold different random weights of the same shape;
generation is forced to run the full length (EOS is never produced: its logit is masked).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.inference.generation import GenerationConfig, generate_ids

VOCAB, PROMPT_LEN = 363, 16
SHAPE = {"n_layers": 4, "n_heads": 4, "d_model": 192, "max_seq_len": 1024}


def ours(new_tokens: int, batch: int, use_cache: bool) -> float:
    torch.manual_seed(0)
    cfg = TransformerConfig(vocab_size=VOCAB, ffn="gelu_tanh", **SHAPE)
    model = build_model(cfg).eval()
    prompts = torch.randint(7, VOCAB, (batch, PROMPT_LEN)).tolist()
    gen = GenerationConfig(max_new_tokens=new_tokens, use_cache=use_cache)
    start = time.perf_counter()
    out = generate_ids(model, prompts, gen, eos_id=1, pad_id=0, suppress_ids=[1])
    seconds = time.perf_counter() - start
    assert all(len(rows[0]) == new_tokens for rows in out)
    return batch * new_tokens / seconds


def huggingface(new_tokens: int, batch: int) -> float:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=384,
        n_positions=SHAPE["max_seq_len"],
        n_embd=SHAPE["d_model"],
        n_layer=SHAPE["n_layers"],
        n_head=SHAPE["n_heads"],
        attn_implementation="sdpa",
        bos_token_id=1,
        eos_token_id=1,
    )
    model = GPT2LMHeadModel(config).eval()
    prompts = torch.randint(7, VOCAB, (batch, PROMPT_LEN))
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            prompts,
            attention_mask=torch.ones_like(prompts),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=1,
        )
    seconds = time.perf_counter() - start
    assert out.shape[1] == PROMPT_LEN + new_tokens
    return batch * new_tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {"ours, KV cache": [], "ours, no cache": [], "HF generate": []}
    for _ in range(args.repeats):  # alternate, so drift in machine load hits every row alike
        runs["ours, KV cache"].append(ours(args.new_tokens, args.batch, use_cache=True))
        runs["ours, no cache"].append(ours(args.new_tokens, args.batch, use_cache=False))
        runs["HF generate"].append(huggingface(args.new_tokens, args.batch))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    print(
        f"\ngreedy decode, {args.new_tokens} new tokens, batch {args.batch}, prompt "
        f"{PROMPT_LEN}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"median of {args.repeats}"
    )
    for name, value in medians.items():
        print(f"  {name:16s} {value:10.1f} tokens/s")
    print(f"  cache speed-up   {medians['ours, KV cache'] / medians['ours, no cache']:10.2f}x")
    print(f"  ours / HF        {medians['ours, KV cache'] / medians['HF generate']:10.2f}x")


if __name__ == "__main__":
    main()
