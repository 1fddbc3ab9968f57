"""`python -m xformers_lab.describe`: the counts it prints are those of the model train builds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xformers_lab.cli import compose_config
from xformers_lab.core import build_model, count_parameters
from xformers_lab.describe import describe
from xformers_lab.estimates import flops_per_token
from xformers_lab.settings import resolve_settings

PRESETS = {"gpt": "clm", "llama": "clm", "bert": "mlm", "t5": "span"}
TINY = ["model.n_layers=2", "model.d_model=64", "model.n_heads=4", "data.seq_len=64"]


def printed(report: str, label: str) -> int:
    """The integer printed after `label` at the start of a line."""
    found = re.search(rf"^\s+{label}\s+([\d,]+)", report, flags=re.MULTILINE)
    assert found, f"{label!r} not in:\n{report}"
    return int(found.group(1).replace(",", ""))


@pytest.mark.parametrize("preset", list(PRESETS))
def test_describe_prints_the_parameters_of_the_real_model(preset: str) -> None:
    args = [f"model={preset}", f"task={PRESETS[preset]}", *TINY]
    report = describe(args)
    settings = resolve_settings(compose_config("train", args))
    model = build_model(settings.model_config(363))  # the byte tokenizer's vocabulary
    assert printed(report, "total") == count_parameters(model)
    assert printed(report, "embedding") + printed(report, "non-embedding") == printed(
        report, "total"
    )
    shape = settings.row_shape()
    flops = flops_per_token(model.config, shape.seq_len, shape.target_len, shape.head_positions)
    value, prefix = re.search(r"per token\s+([\d.]+) ([kMGT])FLOP", report).groups()
    scale = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[prefix]
    assert float(value) * scale == pytest.approx(flops, rel=0.01)


def test_describe_cli_prints_counts_and_memory(run_cli, tmp_path: Path) -> None:
    result = run_cli("xformers_lab.describe", ["model=t5", "task=span", *TINY], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for line in ("non-embedding", "per token", "AdamW states", "activations"):
        assert line in result.stdout
    assert not list(tmp_path.iterdir())  # nothing written, no run directory


def test_describe_refuses_what_it_cannot_know_in_one_line(run_cli, tmp_path: Path) -> None:
    result = run_cli("xformers_lab.describe", ["tokenizer=char"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: tokenizer=char learns its vocabulary from the corpus; give its size as vocab_size=N"
    )
    assert "vocab 97 (padded to 128)" in describe(["tokenizer=char", "vocab_size=97"])
