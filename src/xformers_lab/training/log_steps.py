"""Which training steps the loggers write: only those are worth a `self.log` call."""

from __future__ import annotations

import lightning as L


def written_this_step(trainer: L.Trainer) -> bool:
    """Whether Lightning writes this optimizer step's metrics to the loggers (its own rule, so
    the two never disagree, also after a resume, whose written steps are not multiples of
    `log_every_n_steps`). Valid from `on_before_optimizer_step` to `on_train_batch_end`.

    A `self.log` call costs about a millisecond of Python; logging only the written steps keeps
    that out of a toy model's ~50 ms step."""
    return trainer._logger_connector.should_update_logs
