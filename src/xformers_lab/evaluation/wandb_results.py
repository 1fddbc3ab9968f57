"""`logger=wandb`: an evaluation's metrics and its results table as one W&B run, offline when
there is no API key (the same `conf/logger/wandb.yaml` keys as training; no Lightning)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from xformers_lab.errors import UserError
from xformers_lab.evaluation.results import metric_rows
from xformers_lab.wandb_auth import has_api_key

MODES = ("auto", "online", "offline", "disabled")


def log_results(
    options: dict[str, Any], results: dict[str, Any], run_dir: Path, config: dict[str, Any]
) -> str:
    """Log every metric (`<task>/<metric>`) to the run summary and the table as `results`;
    returns where the run went (its URL, or the offline folder to `wandb sync`). Reads project,
    entity, mode, name, group and tags; the other keys (checkpoints, samples) are training's."""
    import wandb

    mode = options.get("mode", "auto")
    if mode not in MODES:
        raise UserError(f"logger.wandb.mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        mode = os.environ.get("WANDB_MODE") or ("online" if has_api_key() else "offline")
    run = wandb.init(
        project=options.get("project"),
        entity=options.get("entity"),
        name=options.get("name") or run_dir.name,
        group=options.get("group"),
        tags=[*options.get("tags", []), "evaluate"],
        dir=os.environ.get("WANDB_DIR") or str(run_dir),
        mode=mode,
        config=config,
        job_type="evaluate",
    )
    rows = metric_rows(results)
    table = wandb.Table(columns=["task", "n-shot", "metric", "value", "stderr"])
    for task, shots, metric, value, stderr in rows:
        table.add_data(task, shots, metric, value, stderr)
        run.summary[f"{task}/{metric}"] = value
    run.log({"results": table})
    where = run.url or str(Path(run.dir).parent)
    run.finish()
    if mode == "offline":
        print(f"wandb: logged offline; upload with: wandb sync {where}", file=sys.stderr)
    return where
