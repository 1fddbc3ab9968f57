"""Run harness tasks on a loaded checkpoint: the shipped tasks, the user's (`include_path`) and
the harness's own, each task's data read offline when it is cached, or named in one line."""

from __future__ import annotations

import logging
from typing import Any

import lm_eval
from lm_eval.tasks import TaskManager

from xformers_lab.errors import UserError
from xformers_lab.evaluation import SHIPPED_TASKS
from xformers_lab.evaluation.harness import XformersLabLM
from xformers_lab.evaluation.settings import EvalSettings


def run_tasks(lab: Any, settings: EvalSettings) -> dict[str, Any]:
    """The harness's results dict (results.json's content) for `settings.args.tasks`."""
    args = settings.args
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # per-task chatter a user cannot act on
    manager = TaskManager(include_path=[str(SHIPPED_TASKS), *filter(None, [args.include_path])])
    tasks = [task for name in args.tasks for task in _load(manager, name)]
    model = XformersLabLM(
        lab=lab,
        batch_size=args.batch_size,
        max_batch_tokens=settings.eval.max_batch_tokens,
        max_gen_toks=settings.eval.max_gen_toks,
    )
    seed = args.seed
    return lm_eval.simple_evaluate(
        model=model,
        tasks=tasks,
        num_fewshot=args.num_fewshot,
        limit=args.limit,
        task_manager=manager,
        log_samples=args.log_samples,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        fewshot_random_seed=seed,
    )


def _load(manager: TaskManager, name: str) -> list[Any]:
    """The task objects `name` stands for (a task, a group, or a tag's tasks)."""
    if name not in manager.all_tasks:
        raise UserError(
            f"unknown task {name!r}: not shipped (xlab, xlab_python_mc, ...), not the harness's "
            "(lm_eval ls tasks lists them), and no include_path=DIR holds its YAML"
        )
    try:
        loaded = manager.load([name])
    except (ConnectionError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"task {name}: {first}; its dataset is not in the local datasets cache "
            "(HF_DATASETS_CACHE) and the Hugging Face hub cannot be reached"
        ) from None
    if name in loaded["groups"]:
        return [loaded["groups"][name]]
    return list(loaded["tasks"].values())
