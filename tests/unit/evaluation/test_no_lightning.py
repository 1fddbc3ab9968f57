"""The evaluation code imports no Lightning (only `xformers_lab.load()`, whose module is being
made Lightning-free on its own, may bring it)."""

from __future__ import annotations

import subprocess
import sys

MODULES = [
    "xformers_lab.evaluate",
    "xformers_lab.evaluation.settings",
    "xformers_lab.evaluation.perplexity",
    "xformers_lab.evaluation.results",
    "xformers_lab.evaluation.overlay",
    "xformers_lab.evaluation.wandb_results",
    "xformers_lab.evaluation.suite",
]


def imports_lightning(modules: list[str]) -> bool:
    listed = ", ".join(modules)
    code = (
        f"import sys; import {listed}; print(any(m.startswith('lightning') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() == "True"


def test_evaluation_modules_import_no_lightning() -> None:
    assert not imports_lightning(MODULES)
    assert imports_lightning(["xformers_lab.training.loggers"])  # the check can tell
