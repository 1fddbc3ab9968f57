"""What makes the first seconds fast: a command line is refused, and `generate`, `fill_mask`,
`describe`, `convert` and `load()` do their work, without importing Lightning (or `datasets`,
W&B, transformers), whose imports cost seconds. Timings themselves are measured by
`benchmarks/startup.py`, not asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from xformers_lab import checkpoints
from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.data.tokenizers import ByteTokenizer

HEAVY = ("lightning", "pytorch_lightning", "datasets", "wandb", "transformers")

PROBE = """
import runpy, sys
sys.argv = [{module!r}, *{args!r}]
try:
    runpy.run_module({module!r}, run_name="__main__")
except SystemExit as stop:
    print("exit", stop.code, file=sys.stderr)
print("heavy:", sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r}))
"""


def run(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    code = PROBE.format(module=module, args=args, heavy=HEAVY)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def gpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = ByteTokenizer(n_sentinels=0)
    torch.manual_seed(0)
    model = build_model(TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2))
    payload = checkpoints.Payload(
        task="clm", model_config=model.config, tokenizer=tokenizer.state_dict()
    )
    weights = {f"model.{k}": v for k, v in model.state_dict().items()}
    return checkpoints.write(tmp_path_factory.mktemp("gpt") / "gpt.ckpt", weights, payload)


@pytest.mark.parametrize(
    ("module", "args", "expect"),
    [
        ("xformers_lab.train", ["model=gtp"], "unknown model 'gtp'"),
        ("xformers_lab.train", ["model.d_model=100", "model.n_heads=3"], "divisible by n_heads"),
        ("xformers_lab.train", ["data=text", "data.path=nowhere.txt"], "does not exist"),
        ("xformers_lab.describe", ["model=t5", "task=span"], "parameters"),
        ("xformers_lab.generate", ["ckpt=GPT", "prompt=def ", "max_new_tokens=4"], "def "),
        ("xformers_lab.convert", ["to-hf", "GPT", "OUT"], "wrote"),
    ],
)
def test_entry_points_work_without_lightning(
    module: str, args: list[str], expect: str, gpt: Path, tmp_path: Path
) -> None:
    args = [a.replace("GPT", str(gpt)).replace("OUT", str(tmp_path / "hf")) for a in args]
    result = run(module, args, tmp_path)
    assert expect in result.stdout + result.stderr, result.stderr[-2000:]
    assert "heavy: []" in result.stdout, result.stdout[-500:]


def test_the_probe_sees_lightning_when_it_is_imported(tmp_path: Path) -> None:
    result = run("xformers_lab.training.trainer", [], tmp_path)
    assert "heavy: ['lightning'" in result.stdout
