"""Write small generative fine-tuning tasks, seeded, as jsonl (train.jsonl, val.jsonl):

    .venv/bin/python scripts/make_generative_tasks.py reverse data/reverse --format seq2seq
    .venv/bin/python scripts/make_generative_tasks.py reverse data/reverse_sft --format sft
    .venv/bin/python scripts/make_generative_tasks.py reverse data/reverse_chat --format chat
    .venv/bin/python scripts/make_generative_tasks.py ner data/ner --format seq2seq

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=["reverse", "ner"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--format", choices=["seq2seq", "sft", "chat"], default="seq2seq")
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--val", type=int, default=200)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train = args.out / "train.jsonl"
    write(train, examples(args.task, args.train, 0, args.format))
    write(args.out / "val.jsonl", examples(args.task, args.val, 1, args.format, exclude=train))
    print(f"wrote {args.train} + {args.val} {args.task} examples to {args.out}")


if __name__ == "__main__":
    main()
