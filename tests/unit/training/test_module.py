"""TrainingModule, the shell around any objective: checkpoint keys are the objective's, frozen
helpers are sharded under FSDP2 like the model, and an objective may not hide tensors from it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.data.tokenizers import ByteTokenizer
from xformers_lab.tasks.classify import Classification, ClassifyOptions
from xformers_lab.tasks.clm import CausalLM
from xformers_lab.tasks.objective import NoOptions
from xformers_lab.training.module import TrainingModule

TOKENIZER = ByteTokenizer(n_sentinels=0)


def config(arch: str = "decoder") -> TransformerConfig:
    return TransformerConfig(vocab_size=TOKENIZER.vocab_size, arch=arch, d_model=32, n_heads=4)


def shell(objective: nn.Module) -> TrainingModule:
    return TrainingModule(objective, optimizer=None, scheduler=None, weight_decay=0, total_steps=1)


def test_checkpoint_keys_are_the_objectives_and_train_mode_reaches_it() -> None:
    objective = Classification(config("encoder"), TOKENIZER, ClassifyOptions())
    module = shell(objective)
    assert module.state_dict().keys() == objective.state_dict().keys()
    assert {k.split(".")[0] for k in module.state_dict()} == {"model", "classifier"}
    module.eval()
    assert not objective.training and not objective.classifier.training
    module.train()
    assert objective.training and objective.model.training


def test_an_objective_with_tensors_outside_its_submodules_is_refused() -> None:
    objective = CausalLM(config(), TOKENIZER, NoOptions())
    objective.register_buffer("table", torch.zeros(3))
    with pytest.raises(ValueError, match="holds tensors outside its submodules"):
        shell(objective)


@pytest.fixture
def one_rank() -> Iterator[None]:
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


class _Trainer:
    precision = "bf16-mixed"


def test_fsdp_shards_the_frozen_helpers_like_the_model(
    one_rank: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    teacher = build_model(config())
    objective = CausalLM(config(), TOKENIZER, NoOptions(), helpers={"teacher": teacher})
    module = shell(objective)
    mesh = init_device_mesh("cpu", (1, 1), mesh_dim_names=("data_parallel", "tensor_parallel"))
    monkeypatch.setattr(TrainingModule, "trainer", property(lambda self: _Trainer()))
    monkeypatch.setattr(TrainingModule, "device_mesh", property(lambda self: mesh))
    module.configure_model()
    assert isinstance(module.model, FSDPModule) and isinstance(teacher, FSDPModule)
    assert all(isinstance(p, DTensor) and not p.requires_grad for p in teacher.parameters())
    assert not teacher.training
    assert "teacher" not in dict(module.named_children())
    ids = torch.randint(0, TOKENIZER.vocab_size, (2, 8))
    with torch.no_grad():
        assert teacher(ids).shape == (2, 8, teacher.config.padded_vocab_size)
