"""Every command the README and docs/ show is a command the project accepts: `train` lines
compose against the real config tree (groups, options and keys exist), `describe` lines print
their report, and `generate`, `fill_mask` and `convert` lines pass their own argument parsers;
a transcript of a mistake (`$ ...` then `error: ...`) is refused."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from xformers_lab import convert, fill_mask, generate
from xformers_lab.cli import HYDRA_FLAGS, compose_config
from xformers_lab.describe import describe
from xformers_lab.errors import UserError
from xformers_lab.settings import resolve_settings

ROOT = Path(__file__).parents[2]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "recipes").glob("*/README.md")),
]
COMMAND = re.compile(r"^(?:\$ )?python -m xformers_lab\.(\w+)(.*)$")


def commands() -> list[tuple[str, str, list[str], bool]]:
    """(where, entry point, arguments, whether it should fail) of every `python -m
    xformers_lab.<entry>` line in code blocks, with backslash continuations joined and trailing
    comments dropped. A `$ ` transcript followed by an `error:` line shows a failing command."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```(?:bash|console|)\n(.*?)```", page.read_text(), re.DOTALL):
            lines = block.replace("\\\n", " ").splitlines()
            for line, after in zip(lines, [*lines[1:], ""], strict=True):
                match = COMMAND.match(line.strip())
                if match:
                    args = shlex.split(match.group(2), comments=True)
                    fails = line.startswith("$ ") and after.startswith("error:")
                    found.append((f"{page.name}: {line.strip()[:60]}", match.group(1), args, fails))
    return found


COMMANDS = commands()


def test_the_docs_show_commands_of_every_entry_point() -> None:
    assert {entry for _, entry, _, _ in COMMANDS} >= {
        "train", "describe", "generate", "fill_mask", "convert", "report",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("where", "entry", "args", "fails"), COMMANDS, ids=[c[0] for c in COMMANDS]
)
def test_a_documented_command_is_accepted(
    where: str, entry: str, args: list[str], fails: bool
) -> None:
    if fails and entry == "convert":  # refused for what the model directory holds
        assert args[0] in convert.COMMANDS
    elif fails:
        with pytest.raises(UserError):
            accept(entry, args, resolve=True)
    else:
        accept(entry, args, resolve=False)


def accept(entry: str, args: list[str], resolve: bool) -> None:
    """Raise `UserError` where the entry point would refuse `args` before doing any work; with
    `resolve`, as far as `train`'s validation goes (files and hardware included)."""
    if entry in ("train", "describe"):
        overrides = [a for a in args if a not in HYDRA_FLAGS and not a.startswith("vocab_size=")]
        if any(a.startswith("-") for a in overrides):
            return  # Hydra's own flags (--cfg ...)
        first = [re.sub(r"=([^,\[]+),.*$", r"=\1", a) for a in overrides]  # a sweep's first value
        cfg = compose_config("train", first)
        if resolve:
            resolve_settings(cfg)
        if entry == "describe":
            describe(args)
    elif entry == "generate":
        generate.parse(args)
    elif entry == "fill_mask":
        fill_mask.parse_args(args)
    elif entry == "convert":
        assert args[0] in convert.COMMANDS and len(args) == 3
