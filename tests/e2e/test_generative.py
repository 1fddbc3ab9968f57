"""Generative fine-tuning through the real command line: task=seq2seq (T5) and task=sft (GPT)
write predictions.jsonl and best_* by task.monitor, `generate` frames prompts as the run
trained, bad input is one line; the slow runs learn string reversal from scratch."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

import xformers_lab
from xformers_lab.cli import compose_config
from xformers_lab.generate import main as generate_main
from xformers_lab.training.run import train

SCRIPT = Path(__file__).parents[2] / "scripts" / "make_generative_tasks.py"


def tasks_module() -> Any:
    """scripts/make_generative_tasks.py: the examples the recipes train on."""
    spec = importlib.util.spec_from_file_location("make_generative_tasks", SCRIPT)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def write_task(root: Path, task: str, fmt: str, train: int, val: int) -> list[str]:
    """train.jsonl and val.jsonl of `task`; the data overrides that read them."""
    module = tasks_module()
    root.mkdir(parents=True, exist_ok=True)
    module.write(root / "train.jsonl", module.examples(task, train, 0, fmt))
    held_out = module.examples(task, val, 1, fmt, exclude=root / "train.jsonl")
    module.write(root / "val.jsonl", held_out)
    return ["data=text", f"data.path={root / 'train.jsonl'}", f"data.val_path={root / 'val.jsonl'}"]


SEQ2SEQ = [
    "model=t5", "task=seq2seq", "tokenizer=char", "data.seq_len=24", "data.batch_size=16",
    "model.n_layers=1", "model.d_model=32", "model.n_heads=2", "task.max_target_len=16",
    "scheduler.warmup_steps=2", "optim.lr=3e-3",
]  # fmt: skip
SFT = [
    "model=gpt", "task=sft", "tokenizer=char", "data.seq_len=32", "data.batch_size=16",
    "model.n_layers=1", "model.d_model=32", "model.n_heads=2", "scheduler.warmup_steps=2",
    "optim.lr=3e-3",
]  # fmt: skip
SHORT = [
    "trainer.max_steps=6", "trainer.val_check_interval=3", "task.eval_examples=8",
    "task.eval_max_new_tokens=12",
]  # fmt: skip


def records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "predictions.jsonl").read_text().splitlines()]


def test_seq2seq_writes_predictions_of_the_best_validation_and_generates_with_its_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_task(tmp_path / "data", "reverse", "seq2seq", 200, 20)
    overrides = [*SEQ2SEQ, *data, *SHORT, "task.source_prefix=reverse: ", "task.monitor=chrf"]
    summary = train(compose_config("train", overrides), tmp_path / "run")
    assert summary["task"] == "seq2seq" and summary["steps"] == 6
    assert {"best_val_exact_match", "best_val_rougeL", "best_val_bleu", "best_val_chrf"} <= set(
        summary
    )
    rows = records(tmp_path / "run")
    assert len(rows) == 8 and set(rows[0]) == {"step", "source", "reference", "prediction"}
    assert rows[0]["step"] == summary["best_val_step"]  # the validation best.ckpt was taken at
    assert all(r["reference"] == r["source"][::-1] for r in rows)

    lab = xformers_lab.load(summary["checkpoint"])
    assert lab.objective.prompt_ids("abc")[: len("reverse: ")] == lab.tokenizer.encode("reverse: ")
    expected = lab.objective.complete([lab.objective.prompt_ids(rows[0]["source"])])[0]
    assert lab.generate(rows[0]["source"], max_new_tokens=12) == expected
    assert expected == rows[0]["prediction"]  # validation generated what generate writes
    capsys.readouterr()
    generate_main(
        [f"ckpt={summary['checkpoint']}", f"prompt={rows[0]['source']}", "max_new_tokens=12"]
    )
    assert capsys.readouterr().out.splitlines()[0] == expected


def test_sft_on_chats_trains_answers_and_generate_uses_the_template_unless_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_task(tmp_path / "data", "reverse", "chat", 200, 20)
    summary = train(compose_config("train", [*SFT, *data, *SHORT]), tmp_path / "run")
    assert summary["task"] == "sft" and "best_val_exact_match" in summary
    rows = records(tmp_path / "run")
    assert len(rows) == 8 and rows[0]["source"].startswith("user: ")
    lab = xformers_lab.load(summary["checkpoint"])
    tokenizer = lab.tokenizer
    assert lab.objective.prompt_ids("ab") == [
        tokenizer.eos_id, tokenizer.role_id("user"), *tokenizer.encode("ab"),
        tokenizer.role_id("assistant"),
    ]  # fmt: skip
    source = rows[0]["source"].removeprefix("user: ")
    assert lab.generate(source, max_new_tokens=12) == rows[0]["prediction"]
    plain = lab.generate(source, max_new_tokens=12, chat=False)
    ckpt = summary["checkpoint"]
    capsys.readouterr()
    generate_main([f"ckpt={ckpt}", f"prompt={source}", "max_new_tokens=12", "chat=false"])
    assert capsys.readouterr().out.splitlines()[0] == source + plain


def assert_one_line(err: str, message: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], err[-2000:]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("base", "args", "message"),
    [
        (
            SEQ2SEQ,
            ["model=gpt"],
            "task=seq2seq trains encoder_decoder models but model.arch=decoder",
        ),
        (SFT, ["model=t5"], "task=sft trains decoder models but model.arch=encoder_decoder"),
        (SEQ2SEQ, ["task.monitor=accuracy"], "unknown monitor 'accuracy'"),
        (SFT, ["task.truncation=right"], "unknown truncation 'right'; choose one of: drop, left"),
        (SFT, ["task.packing=true", "data.group_by_length=true"], "task.packing=true fills rows"),
        (SEQ2SEQ, ["data.target_field=summary"], "data.target_field='summary' is not a column"),
        (SFT, [], "has none of the columns data.prompt_field='prompt'"),
        (SEQ2SEQ, ["task.eval_examples=0"], "set eval_examples > 0, or monitor=loss"),
    ],
)
def test_generative_mistakes_fail_in_one_line(
    train_main,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    base: list[str],
    args: list[str],
    message: str,
) -> None:
    data = write_task(tmp_path / "data", "reverse", "seq2seq", 40, 8)
    code = train_main([*base, *data, *args, f"hydra.run.dir={tmp_path / 'run'}"])
    assert code == 2
    assert_one_line(capsys.readouterr().err, message)


def test_a_chat_with_an_unknown_role_is_one_line(
    train_main, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    chat = [{"role": "user", "content": "ab"}, {"role": "robot", "content": "ba"}]
    path = tmp_path / "chats.jsonl"
    path.write_text(json.dumps({"messages": chat}) + "\n" * 1 + json.dumps({"messages": chat}))
    args = [*SFT, "data=text", f"data.path={path}", f"data.val_path={path}"]
    assert train_main([*args, f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    assert_one_line(capsys.readouterr().err, "train chat 0 has a message of role 'robot'; roles")


def test_group_by_length_is_for_examples(
    train_main, capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny: list[str]
) -> None:
    (tmp_path / "corpus.txt").write_text("def f(x):\n    return x\n" * 100)
    overrides = [o for o in tiny if not o.startswith("data.max_bytes")]  # a pystdlib option
    data = ["data=text", f"data.path={tmp_path / 'corpus.txt'}", "data.group_by_length=true"]
    assert train_main([*overrides, *data, f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    assert_one_line(capsys.readouterr().err, "a packed corpus has rows of one length")


REVERSE_T5 = [
    "model=t5", "task=seq2seq", "tokenizer=char", "data.seq_len=16", "data.batch_size=64",
    "model.n_layers=3", "model.d_model=128", "model.n_heads=4", "task.max_target_len=16",
    "trainer.max_steps=1500", "trainer.val_check_interval=250", "task.eval_examples=200",
    "scheduler.warmup_steps=50", "optim.lr=2e-3",
]  # fmt: skip
REVERSE_GPT = [
    "model=gpt", "task=sft", "tokenizer=char", "data.seq_len=24", "data.batch_size=64",
    "model.n_layers=4", "model.d_model=128", "model.n_heads=4", "trainer.max_steps=1500",
    "trainer.val_check_interval=250", "task.eval_examples=200", "scheduler.warmup_steps=50",
    "optim.lr=2e-3",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "fmt"), [(REVERSE_T5, "seq2seq"), (REVERSE_GPT, "sft")], ids=["t5", "gpt"]
)
def test_string_reversal_is_learnt_from_scratch(
    tmp_path: Path, overrides: list[str], fmt: str
) -> None:
    """Every output token depends on the whole input: T5 seq2seq and GPT sft reach 0.95 exact
    match on 200 held-out strings."""
    data = write_task(tmp_path / "data", "reverse", fmt, 4000, 200)
    summary = train(compose_config("train", [*overrides, *data]), tmp_path / "run")
    assert summary["best_val_exact_match"] >= 0.95, summary
    assert len(records(tmp_path / "run")) == 200
