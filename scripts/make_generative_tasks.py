"""Write small generative fine-tuning tasks, seeded, as jsonl (train.jsonl, val.jsonl):

    .venv/bin/python scripts/make_generative_tasks.py reverse data/reverse --format seq2seq
    .venv/bin/python scripts/make_generative_tasks.py reverse data/reverse_sft --format sft
    .venv/bin/python scripts/make_generative_tasks.py reverse data/reverse_chat --format chat
    .venv/bin/python scripts/make_generative_tasks.py ner data/ner --format seq2seq
    .venv/bin/python scripts/make_generative_tasks.py gpt2 data/gpt2  # a random GPT-2-shaped model

gpt2 writes a Hugging Face GPT-2 (random weights, 4 layers, d_model 128, 256 positions) with
a byte-level BPE tokenizer.json trained on reversal and NER examples, as `save_pretrained`
writes them, for `python -m xformers_lab.convert from-hf` (offline; needs `transformers`).

reverse: a string of letters -> the same letters reversed; every output token depends on the
whole input, so it cannot be learnt from the first tokens alone. ner: templated sentences ->
their entities as text ("PER: Ada Lovelace; LOC: Paris; ORG: Acme"). Formats: seq2seq
(`source`, `target`), sft (`prompt`, `completion`) or chat (`messages`). The tests build the
same examples with `examples()`.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

LETTERS = "abcdefghij"
FIRST = [
    "Ada",
    "Alan",
    "Grace",
    "Linus",
    "Barbara",
    "Edsger",
    "Donald",
    "Margaret",
    "Ken",
    "Niklaus",
]
LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Dijkstra", "Knuth", "Hamilton"]
PLACES = ["Paris", "London", "Zurich", "Boston", "Kyoto", "Oslo", "Lima", "Cairo", "Perth"]
ORGS = ["Acme", "Initech", "Globex", "Umbrella", "Hooli", "Stark", "Wayne", "Cyberdyne"]
TEMPLATES = [
    ("{per} moved to {loc} to work for {org}.", ("per", "loc", "org")),
    ("{org} hired {per} last year.", ("per", "org")),
    ("In {loc}, {per} gave a talk.", ("per", "loc")),
    ("{per} met {per2} in {loc}.", ("per", "per2", "loc")),
    ("The {org} office in {loc} is closed.", ("loc", "org")),
    ("{per} retired.", ("per",)),
]


def reverse_pair(rng: random.Random, min_len: int = 4, max_len: int = 10) -> tuple[str, str]:
    text = "".join(rng.choice(LETTERS) for _ in range(rng.randint(min_len, max_len)))
    return text, text[::-1]


def ner_pair(rng: random.Random) -> tuple[str, str]:
    template, slots = rng.choice(TEMPLATES)
    people = [f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(2)]
    values = {"per": people[0], "per2": people[1], "loc": rng.choice(PLACES),
              "org": rng.choice(ORGS)}  # fmt: skip
    tags = {"PER": [values[s] for s in slots if s.startswith("per")],
            "LOC": [values[s] for s in slots if s == "loc"],
            "ORG": [values[s] for s in slots if s == "org"]}  # fmt: skip
    target = "; ".join(f"{tag}: {', '.join(names)}" for tag, names in tags.items() if names)
    return template.format(**values), target


def examples(
    task: str, n: int, seed: int, fmt: str = "seq2seq", exclude: Path | None = None
) -> list[dict]:
    """`n` examples of `task` (reverse, ner) in format `fmt` (seq2seq, sft, chat); none whose
    input is also in the file `exclude` (a held-out split)."""
    rng = random.Random(seed)
    seen = set(exclude.read_text().splitlines()) if exclude else set()
    pairs: list[tuple[str, str]] = []
    while len(pairs) < n:
        pair = reverse_pair(rng) if task == "reverse" else ner_pair(rng)
        if not seen or _line(pair, fmt) not in seen:
            pairs.append(pair)
    return [_row(pair, fmt) for pair in pairs]


def _row(pair: tuple[str, str], fmt: str) -> dict:
    source, target = pair
    if fmt == "seq2seq":
        return {"source": source, "target": target}
    if fmt == "sft":
        return {"prompt": f"{source}=", "completion": target}
    chat = [{"role": "user", "content": source}, {"role": "assistant", "content": target}]
    return {"messages": chat}


def _line(pair: tuple[str, str], fmt: str) -> str:
    return json.dumps(_row(pair, fmt))


def write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def hf_gpt2(out: Path) -> None:
    """A random GPT-2-shaped model and its tokenizer, saved as transformers saves them."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    rows = examples("reverse", 2000, 0, "sft") + examples("ner", 2000, 0, "sft")
    texts = [f"{r['prompt']}{r['completion']}" for r in rows]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    end = "<|endoftext|>"
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=[end], show_progress=False, initial_alphabet=alphabet
    )
    backend.train_from_iterator(texts, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=end, eos_token=end, unk_token=end
    )
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer), n_positions=256, n_embd=128, n_layer=4, n_head=4,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=["reverse", "ner", "gpt2"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--format", choices=["seq2seq", "sft", "chat"], default="seq2seq")
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--val", type=int, default=200)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.task == "gpt2":
        hf_gpt2(args.out)
        print(f"wrote a random GPT-2 and its tokenizer to {args.out}")
        return
    train = args.out / "train.jsonl"
    write(train, examples(args.task, args.train, 0, args.format))
    write(args.out / "val.jsonl", examples(args.task, args.val, 1, args.format, exclude=train))
    print(f"wrote {args.train} + {args.val} {args.task} examples to {args.out}")


if __name__ == "__main__":
    main()
