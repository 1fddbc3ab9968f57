"""`python -m xformers_lab.evaluate ckpt=... tasks=[...] | data=...`: a checkpoint on
lm-evaluation-harness tasks, or the loss, perplexity and bits per byte of a corpus.

    python -m xformers_lab.evaluate ckpt=run/checkpoints/best.ckpt tasks=[xlab] num_fewshot=5
    python -m xformers_lab.evaluate ckpt=... tasks=[lambada_openai] limit=100 batch_size=auto
    python -m xformers_lab.evaluate ckpt=... data=text data.path=test.txt eval.stride=512

Overrides compose `conf/evaluate.yaml` (docs/evaluation.md). Everything is checked, and the
model loaded, before the run directory (`hydra.run.dir`) gets results.json, results.md and
config.yaml; a mistake costs one line and writes nothing. No Lightning is imported.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf, open_dict

import xformers_lab
from xformers_lab.cli import compose_config
from xformers_lab.data.corpora import load_corpus
from xformers_lab.errors import UserError, reported_user_errors
from xformers_lab.evaluation.perplexity import corpus_score
from xformers_lab.evaluation.results import markdown, perplexity_results, write_results
from xformers_lab.evaluation.settings import EvalSettings, resolve

CONFIG_NAME = "evaluate"


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    with reported_user_errors():
        cfg = compose_config(CONFIG_NAME, sys.argv[1:] if argv is None else argv, True)
        run_dir = Path(cfg.hydra.run.dir)
        with open_dict(cfg):
            del cfg["hydra"]
        settings = resolve(cfg)
        config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        results = evaluate(settings, config)
        json_path, md_path = write_results(run_dir, results)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(config))
        print(markdown(results))
        if settings.wandb is not None:
            from xformers_lab.evaluation.wandb_results import log_results

            log_results(settings.wandb, results, run_dir, config)
        print(f"results: {json_path}\ntable:   {md_path}")


def evaluate(settings: EvalSettings, config: dict[str, Any]) -> dict[str, Any]:
    """The harness results of `settings`' tasks, or the perplexity of its corpus."""
    lab = xformers_lab.load(settings.args.ckpt, device=settings.args.device)
    if settings.data is None:
        from xformers_lab.evaluation.suite import run_tasks

        return run_tasks(lab, settings)
    arch = lab.config.arch
    if arch != "decoder":
        kind = "a masked LM" if arch == "encoder" else "an encoder-decoder"
        raise UserError(
            f"{settings.args.ckpt} is {kind} (task={lab.task}); perplexity of a corpus is "
            "measured on decoders (causal LMs), which score text left to right"
        )
    stride, max_len = settings.eval.stride or lab.config.max_seq_len, lab.config.max_seq_len
    if stride > max_len:
        raise UserError(f"eval.stride={stride} exceeds the model's max_seq_len={max_len}")
    score = corpus_score(
        lab.model,
        lab.tokenizer,
        _documents(settings),
        stride=stride,
        batch_size=settings.args.batch_rows,
        max_batch_tokens=settings.eval.max_batch_tokens,
    )
    if score.tokens == 0:
        raise UserError("the corpus holds no text to score")
    return perplexity_results(score.metrics(), {**config, "stride": stride})


def _documents(settings: EvalSettings) -> list[str]:
    """The text to score: all of data.path (or data.val_path when given) for data=text, the
    data.split for data=hf, the held-out validation split for data=pystdlib."""
    data = settings.data
    assert data is not None
    if data.source == "text":
        data = replace(data, val_path=data.val_path or data.path)
    elif data.source == "hf":
        data = replace(data, val_split=data.split)
    return list(load_corpus(data)["validation"]["text"])


if __name__ == "__main__":
    main()
