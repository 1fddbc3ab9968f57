"""A new objective is one class: defined here, outside the package, it trains through the real
`train()` with a frozen helper model (a teacher), which stays frozen, in eval mode, out of the
optimizer and out of the checkpoint, cast like the model, and read from its checkpoint once;
`load()` rebuilds the result."""

from __future__ import annotations

import math
import pkgutil
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import xformers_lab
from xformers_lab import checkpoints, settings
from xformers_lab.cli import compose_config
from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.data.tokenizers import ByteTokenizer
from xformers_lab.tasks import OBJECTIVES, objective_class, objective_names
from xformers_lab.tasks.clm import CausalLM
from xformers_lab.tasks.objective import Batch, LossSums
from xformers_lab.training.run import train

SEEN: list[dict[str, Any]] = []
"""What `ToyDistill.summed_loss` saw of its teacher at each training step."""


@dataclass(frozen=True, kw_only=True)
class ToyOptions:
    teacher: str
    """Checkpoint of the frozen teacher."""


class ToyDistill(CausalLM):
    """Next-token loss plus the KL divergence from a frozen teacher: the smallest objective with
    a helper model."""

    name = "toy_distill"
    Options = ToyOptions

    @classmethod
    def helper_checkpoints(cls, options: ToyOptions) -> dict[str, str]:
        return {"teacher": options.teacher}

    def summed_loss(self, batch: Batch) -> LossSums:
        teacher = self.helpers["teacher"]
        weight = teacher.embed.weight
        SEEN.append({"training": teacher.training, "dtype": weight.dtype, "device": weight.device})
        nats, targets, slots = super().summed_loss(batch)
        vocab = self.model_config.vocab_size  # the padded columns are -inf
        with torch.no_grad():
            target = teacher(batch["input_ids"])[..., :vocab].float().log_softmax(-1)
        student = self.model(batch["input_ids"])[..., :vocab].float().log_softmax(-1)
        kl = F.kl_div(student, target, log_target=True, reduction="sum") / vocab
        return LossSums(nats + kl, targets, slots)


@pytest.fixture
def teacher(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A decoder checkpoint sharing the runs' byte tokenizer, and its weights."""
    tokenizer = ByteTokenizer(n_sentinels=100)
    torch.manual_seed(1)
    model = build_model(TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2))
    payload = checkpoints.Payload(
        task="clm", model_config=model.config, tokenizer=tokenizer.state_dict()
    )
    weights = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    path = checkpoints.write(tmp_path / "teacher.ckpt", weights, payload)
    return path, model.state_dict()


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    reads: list[Path] = []
    load = checkpoints._load

    def counted(path: Path) -> Any:
        reads.append(Path(path))
        return load(path)

    monkeypatch.setattr(checkpoints, "_load", counted)
    monkeypatch.setattr(checkpoints, "_cache", type(checkpoints._cache)())
    return reads


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["32-true", "bf16-true"])
def test_a_new_objective_with_a_frozen_teacher_trains_through_the_shell(
    teacher: tuple[Path, dict[str, torch.Tensor]],
    tmp_path: Path,
    tiny: list[str],
    monkeypatch: pytest.MonkeyPatch,
    precision: str,
) -> None:
    path, before = teacher
    reads = count_reads(monkeypatch)
    SEEN.clear()
    overrides = [
        *tiny,
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        f"trainer.precision={precision}",
        "task.name=toy_distill",
        f"+task.teacher={path}",
    ]
    summary = train(compose_config("train", overrides), tmp_path / "run")
    assert summary["task"] == "toy_distill" and summary["steps"] == 4
    dtype = torch.bfloat16 if precision == "bf16-true" else torch.float32
    assert SEEN and all(s == {"training": False, "dtype": dtype, "device": torch.device("cpu")}
                        for s in SEEN)  # fmt: skip
    assert reads.count(path) == 1  # read once: checked at config time, loaded from the cache
    saved = checkpoints.read(summary["checkpoint"])
    assert saved.payload.task == "toy_distill"
    assert all(key.startswith("model.") for key in saved.weights)  # no teacher inside
    optimizer = torch.load(summary["checkpoint"], weights_only=True)["optimizer_states"][0]
    n_trained = sum(len(group["params"]) for group in optimizer["param_groups"])
    assert n_trained == len(list(build_model(saved.payload.model_config).parameters()))
    after = checkpoints.read(path).weights
    for key, value in before.items():
        assert torch.equal(after[f"model.{key}"], value)
    lab = xformers_lab.load(summary["checkpoint"])
    assert lab.task == "toy_distill" and lab.objective.helpers == {}
    assert lab.objective.options == ToyOptions(teacher=str(path))
    assert math.isfinite(summary["final_train_loss"])


def test_a_run_resolves_its_settings_and_reads_init_from_once(
    teacher: tuple[Path, dict[str, torch.Tensor]],
    train_main,
    tmp_path: Path,
    tiny: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = teacher
    reads = count_reads(monkeypatch)
    resolved: list[int] = []
    resolve = settings._resolve
    monkeypatch.setattr(settings, "_resolved", {})
    monkeypatch.setattr(settings, "_resolve", lambda cfg: resolved.append(1) or resolve(cfg))
    args = [*tiny, "trainer.max_steps=3", f"init_from={path}", f"hydra.run.dir={tmp_path / 'r'}"]
    assert train_main(args) == 0
    assert len(resolved) == 1 and reads.count(path) == 1


def test_every_objective_module_defines_the_objective_of_its_name() -> None:
    import xformers_lab.tasks as package

    modules = {m.name for m in pkgutil.iter_modules(package.__path__)} - {"objective"}
    assert set(objective_names()) == modules
    for name in modules:
        module = import_module(f"xformers_lab.tasks.{name}")
        assert objective_class(name).__module__ == module.__name__
    assert OBJECTIVES["toy_distill"] is ToyDistill  # registered by defining it
    assert "toy_distill" not in objective_names()  # listings show the package's own
