"""Generative fine-tuning speed: our task=seq2seq training step against transformers'
`T5ForConditionalGeneration` raw loop on the same padded batches and weights; generation-based
validation (examples/s) against `T5ForConditionalGeneration.generate` on the same prompts; and
task=sft with packing against padding on examples of uneven length (tokens/s).

    OMP_NUM_THREADS=1 python benchmarks/generative.py [--steps 10] [--repeats 3] \
        [--parts seq2seq generation packing]

seq2seq: a T5 v1.1 (d_model 256, 4 + 4 layers, 4 heads, d_ff 1024, vocabulary 8192) built by
transformers and imported (`import_hf`), so both sides hold the same weights; batches of 16
examples with sources of 16 to 96 tokens and targets of 4 to 48 (`</s>` included), padded per
batch by our `Seq2SeqCollator` (labels -100 at padding); HF reads the same input_ids,
attention_mask and labels and shifts them itself. A step is forward, loss (mean over targets),
backward and a fused AdamW step on both sides; tokens/s counts real (unpadded) source and
target tokens. The sides alternate in one process, repeated, and the medians are reported.

generation: greedy, KV-cached, 64 prompts in batches of 32, 32 new tokens each with `</s>`
suppressed on both sides (a random model would stop at random), so both generate the same
tokens (checked). Ours is `Seq2Seq.complete`, what validation runs.

packing: a GPT (d_model 256, 4 layers, 4 heads, byte tokenizer) on prompt/completion examples
of 8 to 250 tokens, seq_len 256: padded batches of 16 examples against packed rows (16 per
batch) holding the same examples; tokens/s counts the trained (completion) tokens. One epoch
of each layout, so both train on the same examples. That packing leaves every example's loss
as it is padded is a test (`tests/unit/tasks/test_sft.py`, 1e-5).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

D_MODEL, N_LAYERS, N_HEADS, D_FF, VOCAB = 256, 4, 4, 1024, 8192
BATCH, BATCHES = 16, 6
NEW_TOKENS, GEN_PROMPTS, GEN_BATCH = 32, 64, 32


def median_rate(run: Callable[[], float], repeats: int) -> float:
    return statistics.median(run() for _ in range(repeats))


# -- seq2seq ---------------------------------------------------------------------------------


def t5_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """(HF T5ForConditionalGeneration, ours) with the same random weights."""
    import transformers as tf

    from xformers_lab.interop import import_hf

    config = tf.T5Config(
        vocab_size=VOCAB, d_model=D_MODEL, d_kv=D_MODEL // N_HEADS, d_ff=D_FF,
        num_layers=N_LAYERS, num_decoder_layers=N_LAYERS, num_heads=N_HEADS,
        feed_forward_proj="gated-gelu", dropout_rate=0.0, tie_word_embeddings=False,
        decoder_start_token_id=0, attn_implementation="sdpa",
    )  # fmt: skip
    torch.manual_seed(0)
    hf = tf.T5ForConditionalGeneration(config)
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours, _, _ = import_hf(Path(tmp))
    return hf, ours


def seq2seq_batches() -> list[dict[str, Any]]:
    """Padded batches of examples of uneven length, as our collator makes them."""
    from xformers_lab.data.tokenizers import ByteTokenizer
    from xformers_lab.tasks.seq2seq import Seq2SeqCollator

    rng = random.Random(0)
    collate = Seq2SeqCollator(ByteTokenizer(n_sentinels=0), seq_len=96, max_target_len=48)

    def example() -> dict[str, Any]:
        source = [rng.randrange(7, VOCAB) for _ in range(rng.randint(15, 95))]
        target = [rng.randrange(7, VOCAB) for _ in range(rng.randint(3, 47))]
        return {"input_ids": [*source, 1], "labels": [*target, 1]}

    return [collate([example() for _ in range(BATCH)]) for _ in range(BATCHES)]


def train_rate(model: torch.nn.Module, loss: Callable[[dict], torch.Tensor], batches: list,
               steps: int) -> float:  # fmt: skip
    """Real tokens per second of `steps` training steps (after one warm-up step)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
    model.train()
    tokens = 0
    for i in range(steps + 1):
        if i == 1:
            start, tokens = time.perf_counter(), 0
        batch = batches[i % len(batches)]
        loss(batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int((batch["labels"] != -100).sum()) + int(batch["attention_mask"].sum())
    return tokens / (time.perf_counter() - start)


def bench_seq2seq(steps: int, repeats: int) -> None:
    hf, ours = t5_pair()
    batches = seq2seq_batches()

    def ours_loss(batch: dict) -> torch.Tensor:  # what task=seq2seq computes, as a mean
        labels = batch["labels"]
        nats = ours.summed_nats(
            batch["input_ids"], labels, attention_mask=batch["attention_mask"],
            decoder_input_ids=batch["decoder_input_ids"],
        )  # fmt: skip
        return nats / (labels != -100).sum()

    def hf_loss(batch: dict) -> torch.Tensor:
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}
        return hf(**inputs).loss

    with torch.no_grad():  # same weights, same batch: the same loss
        ours.eval(), hf.eval()
        print(f"loss check: ours {ours_loss(batches[0]):.6f}  hf {hf_loss(batches[0]):.6f}")
    rates: dict[str, list[float]] = {"hf": [], "ours": []}
    for _ in range(repeats):  # alternate, so load drift hits both
        rates["hf"].append(train_rate(hf, hf_loss, batches, steps))
        rates["ours"].append(train_rate(ours, ours_loss, batches, steps))
    hf_rate, ours_rate = (statistics.median(rates[k]) for k in ("hf", "ours"))
    print("| seq2seq step (T5 v1.1 shape) | ours tokens/s | hf tokens/s | ours / hf |")
    print("|---|---:|---:|---:|")
    print(f"| batch {BATCH}, sources 16-96, targets 4-48 | {ours_rate:,.0f} | {hf_rate:,.0f} | "
          f"{ours_rate / hf_rate:.2f}x |")  # fmt: skip


# -- generation ------------------------------------------------------------------------------


def bench_generation(repeats: int) -> None:
    from xformers_lab.data.tokenizers import ByteTokenizer
    from xformers_lab.inference.generation import GenerationConfig, generate_ids

    hf, ours = t5_pair()
    hf.eval(), ours.eval()
    rng = random.Random(1)
    prompts = [[*(rng.randrange(7, VOCAB) for _ in range(rng.randint(15, 95))), 1]
               for _ in range(GEN_PROMPTS)]  # fmt: skip
    tokenizer = ByteTokenizer(n_sentinels=0)
    config = GenerationConfig(max_new_tokens=NEW_TOKENS)

    def ours_run() -> list[list[int]]:
        out = []
        for start in range(0, len(prompts), GEN_BATCH):
            chunk = prompts[start : start + GEN_BATCH]
            rows = generate_ids(ours, chunk, config, eos_id=1, pad_id=tokenizer.pad_id,
                                suppress_ids=[1])  # fmt: skip
            out += [r[0] for r in rows]
        return out

    def hf_run() -> list[list[int]]:
        out = []
        for start in range(0, len(prompts), GEN_BATCH):
            chunk = prompts[start : start + GEN_BATCH]
            width = max(len(p) for p in chunk)  # T5's encoder pads on the right
            ids = torch.tensor([p + [0] * (width - len(p)) for p in chunk])
            mask = (ids != 0).long()
            with torch.no_grad():
                generated = hf.generate(
                    input_ids=ids, attention_mask=mask, max_new_tokens=NEW_TOKENS,
                    min_new_tokens=NEW_TOKENS, do_sample=False, num_beams=1,
                )  # fmt: skip
            out += [row[1:].tolist() for row in generated]
        return out

    assert ours_run() == hf_run(), "greedy outputs differ"

    def rate(run: Callable[[], Any]) -> float:
        start = time.perf_counter()
        run()
        return len(prompts) / (time.perf_counter() - start)

    ours_rate = median_rate(lambda: rate(ours_run), repeats)
    hf_rate = median_rate(lambda: rate(hf_run), repeats)
    print("| greedy generation (T5 v1.1 shape) | ours examples/s | hf examples/s | ours / hf |")
    print("|---|---:|---:|---:|")
    print(f"| {GEN_PROMPTS} prompts of 16-96 tokens, batch {GEN_BATCH}, {NEW_TOKENS} new tokens | "
          f"{ours_rate:.1f} | {hf_rate:.1f} | {ours_rate / hf_rate:.2f}x |")  # fmt: skip


# -- packing ---------------------------------------------------------------------------------


def bench_packing(repeats: int) -> None:
    from datasets import Dataset

    from xformers_lab.core import TransformerConfig
    from xformers_lab.data.tokenizers import ByteTokenizer
    from xformers_lab.tasks.sft import SFT, SFTOptions

    tokenizer = ByteTokenizer(n_sentinels=3)
    rng = random.Random(2)
    words = [rng.choice("abcdefghij") * rng.randint(1, 5) for _ in range(500)]
    n = 20 * BATCH
    rows = {"prompt": [], "completion": []}
    for _ in range(n):
        size = int(rng.paretovariate(1.2) * 8)  # many short examples, a few long ones
        text = " ".join(rng.choice(words) for _ in range(max(2, min(size, 80))))[:240]
        cut = len(text) // 2
        rows["prompt"].append(text[:cut])
        rows["completion"].append(text[cut:])
    config = TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=D_MODEL, n_layers=N_LAYERS,
                               n_heads=N_HEADS, d_ff=D_FF, max_seq_len=256)  # fmt: skip
    torch.manual_seed(0)
    objective = SFT(config, tokenizer, SFTOptions())
    encoded = Dataset.from_dict(rows).map(SFT.encoder(tokenizer, objective.options), batched=True)
    padded_collate = SFT.collator(tokenizer, 256, SFTOptions())
    packed_collate = SFT.collator(tokenizer, 256, SFTOptions(packing=True))
    examples, _ = padded_collate.prepare(encoded, "train")
    rows_ds, notes = packed_collate.prepare(examples, "train")
    print(notes[0])
    padded = [padded_collate(list(examples.select(range(i, min(i + BATCH, len(examples))))))
              for i in range(0, len(examples), BATCH)]  # fmt: skip
    packed = [packed_collate(list(rows_ds.select(range(i, min(i + BATCH, len(rows_ds))))))
              for i in range(0, len(rows_ds), BATCH)]  # fmt: skip

    def rate(batches: list[dict]) -> float:
        model = objective.model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        real = 0
        start = time.perf_counter()
        for batch in batches:
            nats, targets, _ = objective.summed_loss(batch)
            (nats / targets).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            real += int((batch["labels"] != -100).sum())
        return real / (time.perf_counter() - start)

    pad_rate = median_rate(lambda: rate(padded), repeats)  # one epoch each: the same examples
    pack_rate = median_rate(lambda: rate(packed), repeats)
    print("| sft, GPT d_model 256, uneven examples | padded | packed | packed / padded |")
    print("|---|---:|---:|---:|")
    print(
        f"| trained tokens/s | {pad_rate:,.0f} | {pack_rate:,.0f} | {pack_rate / pad_rate:.2f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", nargs="+", default=["seq2seq", "generation", "packing"])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    if "seq2seq" in args.parts:
        bench_seq2seq(args.steps, args.repeats)
    if "generation" in args.parts:
        bench_generation(args.repeats)
    if "packing" in args.parts:
        bench_packing(args.repeats)


if __name__ == "__main__":
    main()
