"""Generative fine-tuning starts from models imported from Hugging Face: a random small T5 with
its sentencepiece tokenizer (task=seq2seq) and GPT-2 with its tokenizer.json (task=sft), each
training from `init_from` with the imported tokenizer and writing its predictions file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import xformers_lab
from xformers_lab.cli import compose_config
from xformers_lab.interop import convert_from_hf
from xformers_lab.training.run import train

from .conftest import save_with_tokenizer

pytest.importorskip("transformers")

PAIRS = [(f"the fox {i}", f"dog {i % 7}") for i in range(60)]


def write_examples(path: Path, fmt: str) -> Path:
    rows = [
        {"source": s, "target": t} if fmt == "seq2seq" else {"prompt": f"{s}:", "completion": t}
        for s, t in PAIRS
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("name", "task"), [("t5_v1.1", "seq2seq"), ("gpt2", "sft")])
def test_an_imported_model_fine_tunes_and_writes_predictions(
    name: str, task: str, tmp_path: Path
) -> None:
    ckpt = convert_from_hf(save_with_tokenizer(name, tmp_path / "hf"), tmp_path / "model.ckpt")
    data = write_examples(tmp_path / "train.jsonl", task)
    overrides = [
        f"model={'t5' if task == 'seq2seq' else 'gpt'}", f"task={task}", f"init_from={ckpt}",
        "data=text", f"data.path={data}", "data.val_fraction=0.2", "data.seq_len=24",
        "data.batch_size=8", "trainer.max_steps=4", "trainer.val_check_interval=2",
        "scheduler.warmup_steps=1", "task.eval_examples=4", "task.eval_max_new_tokens=4",
    ]  # fmt: skip
    if task == "seq2seq":
        overrides.append("task.source_prefix=tag: ")
    summary = train(compose_config("train", overrides), tmp_path / "run")
    assert summary["task"] == task and summary["steps"] == 4
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").open()]
    assert len(rows) == 4 and {r["source"] for r in rows} <= {
        s if task == "seq2seq" else f"{s}:" for s, _ in PAIRS
    }
    lab = xformers_lab.load(summary["checkpoint"])
    imported = xformers_lab.load(ckpt)
    assert lab.tokenizer.fingerprint() == imported.tokenizer.fingerprint()
    assert lab.config == imported.config
    assert isinstance(lab.generate(PAIRS[0][0], max_new_tokens=4), str)
