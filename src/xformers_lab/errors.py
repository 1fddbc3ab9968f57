"""User-facing errors: one clear line on stderr and a non-zero exit instead of a traceback wall."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix (config, data, paths). Its message is the whole report: one line
    saying what is wrong and how to fix it."""


@contextmanager
def reported_user_errors() -> Iterator[None]:
    """Turn a `UserError` into `error: <message>` and exit 2; re-raise with HYDRA_FULL_ERROR=1."""
    try:
        yield
    except UserError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR) from None
