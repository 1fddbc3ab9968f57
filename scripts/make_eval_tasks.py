"""Write the project's own offline harness tasks (src/xformers_lab/evaluation/tasks/*.jsonl).

    .venv/bin/python scripts/make_eval_tasks.py

Every item is built here from templates of everyday Python, seeded, so the files are ours to
ship and a model trained on the default corpus (the standard library's sources) can do better
than chance. Three tasks, each with a `train` split (few-shot examples) and a `test` split:

    xlab_python_mc     multiple choice: which of four continuations is Python (acc, acc_norm)
    xlab_python_cloze  cloze: the identifier a line must end with, copied from the context
    xlab_python_gen    generation: complete the line; exact match, stopped at the newline
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "xformers_lab" / "evaluation" / "tasks"
SEED = 0
SPLITS = {"train": 40, "test": 200}

NAMES = [
    "value", "name", "path", "data", "items", "count", "size", "key", "result", "text",
    "line", "index", "buffer", "parent", "child", "source", "target", "config", "options",
    "handler", "message", "status", "offset", "length", "prefix", "suffix", "module", "token",
    "stream", "timeout", "entry", "record", "header", "encoding", "callback", "default",
]  # fmt: skip
ERRORS = ["ValueError", "KeyError", "TypeError", "OSError", "IndexError", "AttributeError"]
MODULES = ["os", "sys", "re", "json", "time", "math", "io", "socket", "struct", "string"]

Item = tuple[str, str, list[str]]
"""(context, correct continuation, three wrong ones)."""


def _mc_items(r: random.Random) -> list[Callable[[], Item]]:
    def names(k: int) -> list[str]:
        return r.sample(NAMES, k)

    def for_in() -> Item:
        x, xs = names(2)
        return f"for {x} ", f"in {xs}:", [f"of {xs}:", f"at {xs}:", f"on {xs}:"]

    def except_() -> Item:
        (a,), error = names(1), r.choice(ERRORS)
        context = f"try:\n    {a} = self._{a}()\n"
        return context, f"except {error}:", [f"{w} {error}:" for w in ("catch", "rescue", "onerr")]

    def main_guard() -> Item:
        wrong = ['__init__":', '__name__":', '__file__":']
        return f'{r.choice(["main()", "run()"])}\n\nif __name__ == "', '__main__":', wrong

    def close_call() -> Item:
        a, b, c = names(3)
        return f"def {a}(self, {b}, {c}", "):", ["]:", "}:", ">:"]

    def close_list() -> Item:
        a, b, c = names(3)
        return f"{a} = [{b}, {c}", "]", [")", "}", ">"]

    def close_dict() -> Item:
        a, b, c = names(3)
        return f"{a} = {{'{b}': {c}", "}", ["]", ")", ">"]

    def self_assign() -> Item:
        a, b, *wrong = names(5)
        context = f"    def __init__(self, {a}, {b}):\n        self.{a} = {a}\n        self.{b} = "
        return context, b, wrong

    def else_() -> Item:
        a, b = names(2)
        return f"if {a}:\n    {b} = 1\n", "else:", ["otherwise:", "elseif:", "orelse:"]

    def none_check() -> Item:
        (a,) = names(1)
        return f"if {a} ", "is None:", ["is Null:", "is nil:", "== NULL:"]

    def import_from() -> Item:
        module, (a,) = r.choice(MODULES), names(1)
        return f"from {module} ", f"import {a}", [f"include {a}", f"require {a}", f"use {a}"]

    def raise_() -> Item:
        (a,), error = names(1), r.choice(ERRORS)
        wrong = [f"{w} {error}({a})" for w in ("throw", "panic", "fail")]
        return f"if not {a}:\n    ", f"raise {error}({a})", wrong

    def with_open() -> Item:
        (a,) = names(1)
        return f"with open({a}) ", "as f:", ["to f:", "in f:", "at f:"]

    return [for_in, except_, main_guard, close_call, close_list, close_dict, self_assign, else_,
            none_check, import_from, raise_, with_open]  # fmt: skip


def multiple_choice(r: random.Random, n: int) -> list[dict]:
    makers = _mc_items(r)
    rows = []
    for i in range(n):
        context, right, wrong = makers[i % len(makers)]()
        choices = [right, *wrong]
        r.shuffle(choices)
        rows.append({"context": context, "choices": choices, "label": choices.index(right)})
    return rows


def cloze(r: random.Random, n: int) -> list[dict]:
    def attribute() -> tuple[str, str]:
        a, b = r.sample(NAMES, 2)
        context = f"    def __init__(self, {a}, {b}):\n        self.{a} = {a}\n        self.{b} ="
        return context, f" {b}"

    def getter() -> tuple[str, str]:
        (a,) = r.sample(NAMES, 1)
        return f"    def get_{a}(self):\n        return self._", a

    def loop() -> tuple[str, str]:
        x, xs = r.sample(NAMES, 2)
        return f"for {x} in {xs}:\n    print(", x

    makers = [attribute, getter, loop]
    rows = []
    for i in range(n):
        context, target = makers[i % len(makers)]()
        rows.append({"context": context, "target": target})
    return rows


def generation(r: random.Random, n: int) -> list[dict]:
    def getters() -> tuple[str, str]:
        a, b = r.sample(NAMES, 2)
        first = f"    def {a}(self):\n        return self._{a}\n\n"
        return f"{first}    def {b}(self):\n        return self._", b

    def fields() -> tuple[str, str]:
        a, b = r.sample(NAMES, 2)
        return f"        self.{a} = {a}\n        self.{b} = ", b

    makers = [getters, fields]
    rows = []
    for i in range(n):
        context, answer = makers[i % len(makers)]()
        rows.append({"context": context, "answer": answer})
    return rows


TASKS = {"python_mc": multiple_choice, "python_cloze": cloze, "python_gen": generation}


def main() -> None:
    for name, make in TASKS.items():
        for split, n in SPLITS.items():
            rows = make(random.Random(f"{SEED}-{name}-{split}"), n)
            path = OUT / f"{name}.{split}.jsonl"
            path.write_text("".join(json.dumps(row) + "\n" for row in rows))
            print(f"wrote {path} ({len(rows)} items)")


if __name__ == "__main__":
    main()
