"""`python -m xformers_lab.convert` as a user runs it: a tiny GPT-2 saved by transformers is
imported, generates through our CLI, fine-tunes with init_from, and goes back to transformers."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import xformers_lab
from xformers_lab import checkpoints, convert

transformers = pytest.importorskip("transformers")

CORPUS = [f"def f{i}(x):\n    return x * {i} + {i % 5}\n\n" for i in range(200)]


def tiny_gpt2(path: Path) -> Path:
    """A random GPT2LMHeadModel with a byte-level BPE tokenizer.json, as save_pretrained writes
    them (`<|endoftext|>`, id 0, is bos, eos and unk)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer)
    end = "<|endoftext|>"
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=end, eos_token=end, unk_token=end
    )
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_gpt2(tmp_path_factory.mktemp("convert") / "hf")


@pytest.mark.slow
def test_import_generate_fine_tune_export(
    run_cli, tiny: list[str], hf_dir: Path, tmp_path: Path
) -> None:
    ckpt = tmp_path / "gpt2.ckpt"
    result = run_cli("xformers_lab.convert", ["from-hf", str(hf_dir), str(ckpt)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert checkpoints.read(ckpt).payload.task == "clm"

    args = [f"ckpt={ckpt}", "prompt=def f(x):", "max_new_tokens=8"]
    result = run_cli("xformers_lab.generate", args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lab = xformers_lab.load(ckpt)
    completion = lab.generate("def f(x):", max_new_tokens=8)
    assert result.stdout.startswith(f"def f(x):{completion}\n")

    run = tmp_path / "run"
    steps = ["trainer.max_steps=6", "trainer.val_check_interval=3", "trainer.limit_val_batches=2"]
    overrides = [*tiny, *steps, f"init_from={ckpt}", f"hydra.run.dir={run}"]
    result = run_cli("xformers_lab.train", overrides, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6
    tuned = xformers_lab.load(summary["last_checkpoint"])
    assert tuned.config == replace(lab.config, dropout=0.0)  # the run's model.dropout
    assert tuned.tokenizer.fingerprint() == lab.tokenizer.fingerprint()
    assert not torch.equal(tuned.model.embed.weight, lab.model.embed.weight)

    out = tmp_path / "exported"
    result = run_cli(
        "xformers_lab.convert", ["to-hf", summary["last_checkpoint"], str(out)], tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    exported = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.tensor([lab.tokenizer.encode("def f(x):\n    return x")])
    with torch.no_grad():
        expected = tuned.model(ids)[..., : exported.config.vocab_size]
        torch.testing.assert_close(exported(ids).logits, expected, atol=1e-4, rtol=1e-4)
    auto_tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert auto_tokenizer.encode("def f(x):") == lab.tokenizer.encode("def f(x):")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["from-hf", "HF"], "expected a command and two paths"),
        (["from-hf", "NOPE", "x.ckpt"], "is not a Hugging Face model directory (no config.json)"),
        (["from-hf", "BAD", "x.ckpt"], "unsupported: GPT-2 with scale_attn_by_inverse_layer_idx"),
        (["to-hf", "nope.ckpt", "out"], "checkpoint nope.ckpt does not exist"),
    ],
)
def test_mistakes_fail_in_one_line(hf_dir: Path, tmp_path: Path, capsys, args, message) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(hf_dir, bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps(config | {"scale_attn_by_inverse_layer_idx": True}))
    paths = {"HF": str(hf_dir), "BAD": str(bad), "x.ckpt": str(tmp_path / "x.ckpt")}
    with pytest.raises(SystemExit) as exit_:
        convert.main([paths.get(a, a) for a in args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "x.ckpt").exists()
