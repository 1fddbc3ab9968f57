"""How a failed load is told to the user: one line, the underlying cause first."""

from __future__ import annotations


def reason(err: BaseException) -> str:
    """`Type: first line` of what went wrong, looking through datasets' wrapper exceptions."""
    cause = err.__cause__ or err
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
