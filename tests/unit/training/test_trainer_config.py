"""The trainer keys' own logic: how many CPU threads each process takes."""

from __future__ import annotations

import pytest

from xformers_lab.errors import UserError
from xformers_lab.training.trainer_config import TrainerConfig, intra_op_threads
from xformers_lab.typed_config import build


@pytest.mark.parametrize(
    ("keys", "env", "expected"),
    [
        ({"accelerator": "cpu", "devices": 2}, {}, 8),  # 2 ranks share 16 cores
        ({"accelerator": "cpu", "devices": 3}, {}, 5),
        ({"accelerator": "cpu", "devices": 32}, {}, 1),
        ({"accelerator": "cpu", "devices": 1}, {}, None),  # one process: torch's default
        ({"accelerator": "cpu", "devices": 2}, {"OMP_NUM_THREADS": "4"}, None),  # the user's
        ({"accelerator": "cpu", "devices": 2, "threads": 3}, {}, 3),
        ({"accelerator": "cpu", "devices": 1, "threads": 3}, {"OMP_NUM_THREADS": "4"}, 3),
    ],
)
def test_local_cpu_ranks_share_the_cores(
    keys: dict[str, object], env: dict[str, str], expected: int | None
) -> None:
    assert intra_op_threads(TrainerConfig(**keys), env, cores=16) == expected  # type: ignore[arg-type]


def test_threads_must_be_positive() -> None:
    with pytest.raises(UserError, match="threads must be positive"):
        build(TrainerConfig, {"threads": 0}, "trainer")
