"""`python -m xformers_lab.evaluate` end to end on tiny random checkpoints: perplexity and
harness runs write results.json (the harness's layout) and results.md, `report` overlays them,
`logger=wandb` logs offline, and every mistake costs one line and writes nothing."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from xformers_lab import evaluate
from xformers_lab.core import TransformerConfig, build_model
from xformers_lab.data.tokenizers import ByteTokenizer
from xformers_lab.evaluation.perplexity import corpus_score
from xformers_lab.interop.conversion import save_checkpoint

pytest.importorskip("lm_eval")

TEXT = "import os\n\ndef main():\n    print(os.getcwd())\n" * 3


def _ckpt(path: Path, arch: str = "decoder") -> Path:
    tokenizer = ByteTokenizer.train([], n_sentinels=4)
    cfg = TransformerConfig(
        vocab_size=tokenizer.vocab_size,
        arch=arch,
        d_model=32,
        n_heads=2,
        n_layers=1,
        max_seq_len=48,
    )
    torch.manual_seed(0)
    task = "clm" if arch == "decoder" else "mlm"
    return save_checkpoint(path, build_model(cfg).eval(), tokenizer, task, {})


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _ckpt(tmp_path_factory.mktemp("ckpt") / "gpt.ckpt")


def _main(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    try:
        evaluate.main(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def test_perplexity_run_writes_the_corpus_figures(ckpt, tmp_path, monkeypatch, capsys) -> None:
    corpus = tmp_path / "test.txt"
    corpus.write_text(TEXT)
    run = tmp_path / "ppl"
    args = [f"ckpt={ckpt}", "data=text", f"data.path={corpus}", "eval.stride=16"]
    assert _main([*args, f"hydra.run.dir={run}"], monkeypatch) == 0
    figures = json.loads((run / "results.json").read_text())["results"]["perplexity"]
    lab = __import__("xformers_lab").load(ckpt)
    expected = corpus_score(
        lab.model, lab.tokenizer, [TEXT], stride=16, batch_size=None, max_batch_tokens=64
    )
    assert math.isclose(figures["loss,none"], expected.loss, rel_tol=1e-6)
    assert math.isclose(figures["bits_per_byte,none"], expected.bits_per_byte, rel_tol=1e-6)
    assert figures["tokens,none"] == len(TEXT) and figures["windows,none"] == expected.windows
    assert "| perplexity | 0 | bits_per_byte | ↓ |" in (run / "results.md").read_text()
    assert "ckpt:" in (run / "config.yaml").read_text()


def test_harness_run_then_report_overlays_two_runs(ckpt, tmp_path, monkeypatch) -> None:
    runs = [tmp_path / "zero", tmp_path / "one"]
    for shots, run in enumerate(runs):
        args = [f"ckpt={ckpt}", "tasks=[xlab]", "limit=4", f"num_fewshot={shots}"]
        assert _main([*args, "batch_size=3", f"hydra.run.dir={run}"], monkeypatch) == 0
    results = json.loads((runs[1] / "results.json").read_text())
    tasks = {"xlab_python_mc", "xlab_python_cloze", "xlab_python_gen"}
    assert set(results["results"]) == tasks
    assert all(results["n-shot"][t] == 1 for t in tasks)
    assert 0 <= results["results"]["xlab_python_mc"]["acc,none"] <= 1
    assert results["config"]["model_num_parameters"] > 0
    from xformers_lab import report

    report.main([*map(str, runs), f"out={tmp_path / 'cmp'}"])
    table = (tmp_path / "cmp" / "results.md").read_text()
    assert "| task | metric | zero | one |" in table and "| xlab_python_mc | acc |" in table
    assert (tmp_path / "cmp" / "results.png").stat().st_size > 0


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tasks=[no_such_task]"], "unknown task 'no_such_task'"),
        (["tasks=[xlab]", "data=pystdlib"], "one of the two"),
        ([], "one of the two"),
        (["tasks=[xlab]", "batch_size=-2"], "batch_size must be a positive int or auto"),
        (["data=text", "data.path=missing.txt"], "does not exist"),
        (["data=pystdlib", "eval.stride=999"], "exceeds the model's max_seq_len=48"),
        (["tasks=[xlab]", "logger=csv"], "logger=csv does not apply to evaluate"),
        (["tasks=[xlab]", "eval.max_gen_toks=0"], "max_gen_toks must be positive"),
    ],
)
def test_a_mistake_costs_one_line_and_writes_nothing(
    args, message, ckpt, tmp_path, monkeypatch, capsys
) -> None:
    run = tmp_path / "run"
    assert _main([f"ckpt={ckpt}", *args, f"hydra.run.dir={run}"], monkeypatch) == 2
    assert message in _one_line_error(capsys)
    assert not run.exists()


def test_a_masked_lm_is_refused_for_perplexity_and_tasks(tmp_path, monkeypatch, capsys) -> None:
    bert = _ckpt(tmp_path / "bert.ckpt", arch="encoder")
    for args in (["data=pystdlib"], ["tasks=[xlab_python_mc]"]):
        run = tmp_path / "run"
        assert _main([f"ckpt={bert}", *args, f"hydra.run.dir={run}"], monkeypatch) == 2
        assert "masked LM" in _one_line_error(capsys) and not run.exists()


def test_without_lm_eval_the_command_says_how_to_install_it(ckpt, monkeypatch, capsys) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval" else real(name, *a)
    )
    assert _main([f"ckpt={ckpt}", "tasks=[xlab]"], monkeypatch) == 2
    assert "pip install 'xformers_lab[eval]'" in _one_line_error(capsys)


def test_offline_a_missing_task_dataset_is_one_line_naming_it(ckpt, tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    args = [f"ckpt={ckpt}", "tasks=[lambada_openai]", f"hydra.run.dir={tmp_path / 'run'}"]
    result = subprocess.run(
        [sys.executable, "-m", "xformers_lab.evaluate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: task lambada_openai:") and "EleutherAI/lambada_openai" in last
    assert not (tmp_path / "run").exists()


def test_logger_wandb_logs_the_figures_offline(ckpt, tmp_path) -> None:
    """In a subprocess: the offline run's file is complete once the process has exited."""
    from .test_wandb import records

    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    run = tmp_path / "run"
    args = [f"ckpt={ckpt}", "data=text", f"data.path={corpus}", "logger=wandb"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    result = subprocess.run(
        [sys.executable, "-m", "xformers_lab.evaluate", *args, f"hydra.run.dir={run}"],
        env={**env, "NETRC": str(tmp_path / "no-netrc")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "logged offline; upload with: wandb sync" in result.stderr
    loss = json.loads((run / "results.json").read_text())["results"]["perplexity"]["loss,none"]
    (log,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    summary = {
        u.key: json.loads(u.value_json)
        for r in records(log)
        if r.WhichOneof("record_type") == "summary"
        for u in r.summary.update
    }
    assert math.isclose(summary["perplexity/loss"], loss, rel_tol=1e-9)
