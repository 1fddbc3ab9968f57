"""DDP and FSDP2 for real: two CPU processes over gloo train exactly like one process with the
same global batch; an FSDP sharded checkpoint resumes, and consolidates into one file that a
single process resumes from and generates with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

STEPS = 12
OBJECTIVES = {
    # MLM: the target count differs between ranks, so normalisation must be global
    "mlm": ["model=bert", "task=mlm"],
    # The fused head + loss (`summed_nats`, an FSDP entry method) on a tied and an untied head
    "clm": ["model=gpt", "task=clm"],
    "span": ["model=t5", "task=span"],
}
_SHAPE = [
    "model.n_layers=2",
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=6",
    "trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.checkpoint_every_n_steps=6",
]
_RUN = [*OBJECTIVES["mlm"], *_SHAPE]
ONE_PROCESS = ["trainer=cpu", "data.batch_size=16"]
TWO_PROCESSES = ["trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.devices=2"]
STRATEGIES = {
    "ddp": ["trainer=ddp", *TWO_PROCESSES, "data.batch_size=8"],
    "fsdp": ["trainer=fsdp", *TWO_PROCESSES, "data.batch_size=8"],
}


def train(args: list[str], run_dir: Path, cwd: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    done = subprocess.run(
        [sys.executable, "-m", "xformers_lab.train", *args, f"hydra.run.dir={run_dir}"],
        cwd=cwd,
        env=env,  # no OMP_NUM_THREADS: the ranks share the cores by themselves
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny: list[str]):
    """Run dirs by name (`one`, `ddp`, `fsdp`), each trained on first use."""
    root = tmp_path_factory.mktemp("parallel")

    def get(name: str) -> Path:
        """`one`, `ddp` or `fsdp`, then `-clm` or `-span` for those objectives instead of MLM."""
        strategy, _, objective = name.partition("-")
        args = [*tiny, *OBJECTIVES[objective or "mlm"], *_SHAPE]
        args += STRATEGIES.get(strategy, ONE_PROCESS)
        if not (root / name / "summary.json").exists():
            train(args, root / name, root)
        return root / name

    return get


@pytest.mark.distributed
@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "fsdp-clm", "fsdp-span"])
def test_two_ranks_log_the_losses_of_one_process_with_the_same_global_batch(
    strategy: str, runs, logged_train_losses
) -> None:
    single = "-".join(["one", *strategy.split("-")[1:]])
    expected, got = logged_train_losses(runs(single)), logged_train_losses(runs(strategy))
    shared = max(1, len(os.sched_getaffinity(0)) // 2)
    assert json.loads((runs(strategy) / "summary.json").read_text())["intra_op_threads"] == shared
    assert sorted(got) == sorted(expected) == list(range(STEPS))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step
    one = json.loads((runs(single) / "summary.json").read_text())
    summary = json.loads((runs(strategy) / "summary.json").read_text())
    assert summary["best_val_loss"] == pytest.approx(one["best_val_loss"], rel=1e-5)
    assert summary["n_params"] == one["n_params"]  # FSDP counts whole parameters, not shards


@pytest.mark.distributed
def test_fsdp_writes_sharded_checkpoints_and_full_safetensors(runs) -> None:
    checkpoints = runs("fsdp") / "checkpoints"
    last = checkpoints / "last.ckpt"
    assert last.is_dir() and sorted(p.name for p in last.glob("*.distcp")) == [
        "__0_0.distcp",
        "__1_0.distcp",
    ]
    assert not list(checkpoints.glob(".*"))  # no temporary or old directory left behind
    from safetensors.torch import load_file

    exported = load_file(str(checkpoints / "model.safetensors"))
    reference = load_file(str(runs("one") / "checkpoints" / "model.safetensors"))
    assert exported.keys() == reference.keys()
    for name, tensor in exported.items():
        torch.testing.assert_close(tensor, reference[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.distributed
def test_fsdp_resumes_from_its_sharded_checkpoint(
    runs, tiny: list[str], tmp_path: Path, logged_train_losses
) -> None:
    shards = runs("fsdp") / "checkpoints" / "step=6.ckpt"
    args = [*tiny, *_RUN, *STRATEGIES["fsdp"], f"trainer.resume='{shards}'"]
    train(args, tmp_path / "resumed", tmp_path)
    resumed = logged_train_losses(tmp_path / "resumed")
    uninterrupted = logged_train_losses(runs("fsdp"))
    assert sorted(resumed) == list(range(6, STEPS))
    for step, loss in resumed.items():
        assert loss == pytest.approx(uninterrupted[step], rel=1e-6), step


@pytest.mark.distributed
def test_a_consolidated_fsdp_checkpoint_resumes_on_one_process_and_generates(
    runs, run_cli, tiny: list[str], tmp_path: Path, logged_train_losses
) -> None:
    full = tmp_path / "step6.ckpt"
    shards = runs("fsdp") / "checkpoints" / "step=6.ckpt"
    done = run_cli("xformers_lab.convert", ["consolidate", str(shards), str(full)], tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == f"wrote {full}", done.stderr
    assert torch.load(full, weights_only=True)["global_step"] == 6
    train([*tiny, *_RUN, *ONE_PROCESS, f"trainer.resume={full}"], tmp_path / "single", tmp_path)
    resumed = logged_train_losses(tmp_path / "single")
    uninterrupted = logged_train_losses(runs("one"))
    assert sorted(resumed) == list(range(6, STEPS))
    for step, loss in resumed.items():
        assert loss == pytest.approx(uninterrupted[step], rel=1e-5), step
    done = run_cli("xformers_lab.fill_mask", [f"ckpt={full}", "text=def <mask>(x):"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
