"""Decisions for a run that is a Slurm job submitted by submitit, from its environment variables:
which signal stops it, whether its stop hands over to submitit's requeue, whether it resumes."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightning.pytorch.plugins.environments import SLURMEnvironment
from submitit.core.job_environment import JobEnvironment, SignalHandler
from submitit.core.utils import DelayedSubmission, JobPaths
from submitit.slurm.slurm import SlurmJobEnvironment

from xformers_lab.training.resilience import Resilience
from xformers_lab.training.signals import StopRequested
from xformers_lab.training.slurm import Preemption, cluster_plugins, requeued_resume
from xformers_lab.training.trainer_config import TrainerConfig


@pytest.fixture(autouse=True)
def outside_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts outside any Slurm or submitit job (even when pytest runs inside one)."""
    for name in list(os.environ):
        if name.startswith(("SLURM_", "SUBMITIT_")):
            monkeypatch.delenv(name)


@pytest.fixture
def submitit_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[SignalHandler]:
    """A process as submitit sets it up on global rank 1: its handler installed for USR2."""
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_PROCID", "1")
    delayed = DelayedSubmission(print)
    delayed.set_timeout(60, 3)
    handler = SignalHandler(SlurmJobEnvironment(), JobPaths(tmp_path, job_id="42"), delayed)
    before = signal.signal(signal.SIGUSR2, handler.checkpoint_and_try_requeue)
    yield handler
    signal.signal(signal.SIGUSR2, before)


@pytest.mark.parametrize(
    ("restarts", "resume", "expected"),
    [
        (None, None, None),
        ("0", None, None),
        ("1", None, "auto"),
        ("2", "auto", "auto"),
        ("1", "/ckpt/step=10.ckpt", "/ckpt/step=10.ckpt"),  # an explicit choice is kept
    ],
)
def test_a_requeued_job_resumes_from_its_checkpoints(
    monkeypatch: pytest.MonkeyPatch, restarts: str | None, resume: str | None, expected: str | None
) -> None:
    if restarts is not None:
        monkeypatch.setenv("SLURM_RESTART_COUNT", restarts)
    assert requeued_resume(resume) == expected


def test_the_automatic_resume_is_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    with caplog.at_level(logging.INFO):
        requeued_resume(None)
    assert caplog.messages == [
        "Slurm requeued this job (SLURM_RESTART_COUNT=1): trainer.resume=auto"
    ]


def test_outside_a_submitit_job_nothing_listens_for_preemption() -> None:
    assert Preemption.of_this_job() is None
    assert cluster_plugins() == []


def test_a_foreign_usr2_handler_is_not_taken_for_submitit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    assert Preemption.of_this_job() is None  # USR2 has the default action: not a job process


def test_submitit_preemption_signal_can_be_changed(
    monkeypatch: pytest.MonkeyPatch, submitit_job: SignalHandler
) -> None:
    preemption = Preemption.of_this_job()
    assert preemption is not None and preemption.signum == signal.SIGUSR2
    assert preemption.handler == submitit_job.checkpoint_and_try_requeue
    monkeypatch.setattr(JobEnvironment, "USR_SIG", "USR1")  # SUBMITIT_PREEMPT_SIGNAL=USR1
    assert Preemption.of_this_job() is None  # submitit's handler would be on USR1


def test_under_submitit_preemption_stops_at_a_step_boundary_then_hands_over(
    tmp_path: Path, submitit_job: SignalHandler, capsys: pytest.CaptureFixture[str]
) -> None:
    resilience = Resilience(TrainerConfig(), tmp_path)
    assert resilience.stop.signals == (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)
    with pytest.raises(SystemExit) as exited, resilience.stopping():
        raise StopRequested(signal.SIGUSR2, 7, tmp_path / "last.ckpt")
    assert exited.value.code == 0  # rank 1: submitit's handler returned, rank 0 requeues
    assert "stopped by SIGUSR2 at step 7" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited, resilience.stopping():
        raise StopRequested(signal.SIGTERM, 7, tmp_path / "last.ckpt")
    assert exited.value.code == 128 + signal.SIGTERM  # other signals: stop, say how to resume


def test_lightning_takes_ranks_from_slurm_but_does_not_requeue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    (plugin,) = cluster_plugins()
    assert isinstance(plugin, SLURMEnvironment) and not plugin.auto_requeue
