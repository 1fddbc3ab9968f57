"""`xlab-lm-eval` (or `python -m xformers_lab.lm_eval_cli`): the harness's own `lm_eval`
command line with our model registered, for users of its flags.

    xlab-lm-eval --model xformers_lab --model_args ckpt=run/checkpoints/best.ckpt \\
        --tasks xlab_python_mc --include_path "$(python -m xformers_lab.lm_eval_cli --tasks-dir)"

lm-eval 0.4 finds models only in its own registry (no plugin entry points), so a plain `lm_eval`
process never imports ours; this command imports it first, then hands over. From Python,
`import xformers_lab.evaluation.harness` registers it for `lm_eval.simple_evaluate` the same way.
"""

from __future__ import annotations

import sys

from xformers_lab.errors import reported_user_errors
from xformers_lab.evaluation import SHIPPED_TASKS
from xformers_lab.evaluation.settings import require_lm_eval


def main() -> None:
    """Console entry point."""
    if sys.argv[1:] == ["--tasks-dir"]:
        print(SHIPPED_TASKS)
        return
    with reported_user_errors():
        require_lm_eval()
        from lm_eval.__main__ import cli_evaluate

        import xformers_lab.evaluation.harness  # noqa: F401  registers the `xformers_lab` model

    cli_evaluate()


if __name__ == "__main__":
    main()
