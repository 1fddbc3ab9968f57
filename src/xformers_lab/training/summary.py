"""`summary.json`: the machine-readable result every run directory ends with."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xformers_lab.tasks.objective import Tracked

SUMMARY_FILE = "summary.json"


def best_validation(validations: list[dict[str, float]], tracked: Tracked) -> dict[str, float]:
    """The validation the best checkpoint was taken at: the best value of the objective's
    tracked metric (the first of equals)."""
    key = f"val/{tracked.metric}"
    best: dict[str, float] = {}
    for validation in validations:
        if key in validation and (not best or tracked.better(validation[key], best[key])):
            best = validation
    return best


def write_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    """Write `summary.json` atomically (temporary file, then rename)."""
    path = run_dir / SUMMARY_FILE
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".summary.", suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        json.dump(summary, out, indent=2, sort_keys=True)
        out.write("\n")
    os.replace(tmp, path)
    return path
