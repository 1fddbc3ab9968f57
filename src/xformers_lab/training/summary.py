"""`summary.json`: the machine-readable result every run directory ends with."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

SUMMARY_FILE = "summary.json"


def best_validation(validations: list[dict[str, float]]) -> dict[str, float]:
    """The validation with the lowest loss (the one the best checkpoint was taken at)."""
    scored = [v for v in validations if "val/loss" in v]
    return min(scored, key=lambda v: v["val/loss"]) if scored else {}


def write_summary(run_dir: Path, summary: dict[str, Any]) -> Path:
    """Write `summary.json` atomically (temporary file, then rename)."""
    path = run_dir / SUMMARY_FILE
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".summary.", suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        json.dump(summary, out, indent=2, sort_keys=True)
        out.write("\n")
    os.replace(tmp, path)
    return path
