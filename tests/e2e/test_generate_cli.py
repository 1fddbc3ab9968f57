"""`python -m xformers_lab.generate` and `load(path).generate` on a trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

import xformers_lab
from xformers_lab import generate


def checkpoint(run: Path) -> str:
    return str(run / "checkpoints" / "best.ckpt")


def test_cli_continues_each_prompt(tiny_run: Path, capsys, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("import os\n\ndef main(\n")
    generate.main([f"ckpt={checkpoint(tiny_run)}", f"prompt_file={prompts}", "max_new_tokens=8"])
    out = capsys.readouterr().out
    assert out.count("-" * 40) == 2
    assert out.startswith("import os") and "\ndef main(" in out


def test_cli_sampling_is_reproducible_with_a_seed(tiny_run: Path, capsys) -> None:
    sampling = ["do_sample=true", "top_p=0.9", "temperature=0.8", "seed=5", "num_samples=2"]
    args = [f"ckpt={checkpoint(tiny_run)}", "prompt=class ", "max_new_tokens=12", *sampling]
    generate.main(args)
    first = capsys.readouterr().out
    generate.main(args)
    assert capsys.readouterr().out == first
    assert "[2/2] class " in first  # the prompt is kept verbatim, trailing space included
    assert "<extra_id" not in first and "<mask>" not in first  # never seen as targets


def test_load_api_generates_text(tiny_run: Path) -> None:
    lab = xformers_lab.load(checkpoint(tiny_run))
    text = lab.generate("def ", max_new_tokens=10)
    assert isinstance(text, str) and len(text) > 0
    both = lab.generate(["a", "b"], max_new_tokens=5, num_beams=3, num_samples=2)
    assert len(both) == 2 and all(len(rows) == 2 for rows in both)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prompt=x"], "generate.ckpt must be set"),
        (["ckpt=/nope.ckpt", "prompt=x"], "checkpoint /nope.ckpt does not exist"),
        (["ckpt=CKPT"], "exactly one of prompt=... or prompt_file=..."),
        (["ckpt=CKPT", "prompt=x", "top_p=2"], "top_p must be in (0, 1]"),
        (["ckpt=CKPT", "prompt=x", "temprature=0.5"], "unknown key generate.temprature"),
        (["ckpt=CKPT", "prompt=x", "num_beams=2", "do_sample=true"], "beam search does not"),
        (["ckpt=CKPT", "prompt"], "expected key=value arguments"),
    ],
)
def test_bad_arguments_fail_in_one_line(tiny_run: Path, capsys, args, message) -> None:
    args = [a.replace("CKPT", checkpoint(tiny_run)) for a in args]
    with pytest.raises(SystemExit) as exit_:
        generate.main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
