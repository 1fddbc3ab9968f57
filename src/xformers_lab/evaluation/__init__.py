"""Evaluation of our checkpoints: lm-evaluation-harness tasks and the perplexity of any corpus.

    scoring.py      log-likelihoods of continuations, one forward pass per batch
    batching.py     requests sorted by length and cut into batches
    harness.py      the `xformers_lab` model of lm-eval (needs the `eval` extra)
    tasks/          the project's own offline tasks (harness YAML + local jsonl)
    perplexity.py   loss, perplexity and bits per byte with a sliding window
    results.py      results.json (the harness's format) and results.md
    overlay.py      several runs' results side by side (`python -m xformers_lab.report`)

Nothing here imports Lightning: evaluation needs only `xformers_lab.load()`.
"""

from pathlib import Path

SHIPPED_TASKS = Path(__file__).resolve().parent / "tasks"
"""The project's own harness tasks, always on the include path (`tasks=[xlab]` runs them all)."""
