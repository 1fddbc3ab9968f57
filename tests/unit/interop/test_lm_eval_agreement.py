"""Our harness model agrees with the harness's own Hugging Face backend on the same weights: a
random model is imported, exported with `convert to-hf`, and run through `--model hf` and
`--model xformers_lab` on the shipped tasks and a rolling (perplexity) task. Per-request
log-likelihoods match within 1e-4, greedy flags and generations exactly, and so do the metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from xformers_lab.interop import convert_from_hf, convert_to_hf

from .conftest import TEXTS, save_with_tokenizer, sentencepiece_model

lm_eval = pytest.importorskip("lm_eval")
pytest.importorskip("accelerate")  # the harness's HF backend
transformers = pytest.importorskip("transformers")

from lm_eval.tasks import TaskManager  # noqa: E402

from xformers_lab.evaluation import SHIPPED_TASKS  # noqa: E402
from xformers_lab.evaluation.harness import XformersLabLM  # noqa: E402

MAX_LENGTH = 64
TASKS = ["xlab_python_mc", "xlab_python_cloze", "xlab_python_gen", "rolling_text"]


def _t5_with_tokenizer(path: Path) -> Path:
    """A random T5 v1.1 whose decoder is as deep as its encoder (transformers 5 sizes T5's
    generation cache by the encoder), with a sentencepiece tokenizer. Its untied head is scaled
    down to a trained model's confidence: at init it puts ~17 nats on each token, and a float32
    sum of a hundred of those is only resolved to ~1e-4 in any summation order."""
    import sentencepiece as spm

    model = sentencepiece_model(80, bos=False)
    path.mkdir(parents=True)
    (path / "spiece.model").write_bytes(model)
    config = transformers.T5Config(
        vocab_size=len(spm.SentencePieceProcessor(model_proto=model)) + 100,
        d_model=32,
        d_kv=16,
        d_ff=48,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        dropout_rate=0.0,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(0.1)
    model.save_pretrained(path)
    return path


def _rolling_task(root: Path) -> Path:
    """A user task (include_path): whole texts scored by loglikelihood_rolling, longer than
    the context so that they take several windows."""
    data = root / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": TEXTS[i]}) + "\n" for i in range(6)))
    (root / "rolling_text.yaml").write_text(
        "task: rolling_text\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: loglikelihood_rolling\n"
        "doc_to_text: ''\n"
        "doc_to_target: '{{text}}'\n"
        "metric_list:\n"
        "  - metric: word_perplexity\n  - metric: byte_perplexity\n  - metric: bits_per_byte\n"
    )
    return root


def _run(model, tasks_dir: Path, **model_args) -> dict:
    manager = TaskManager(include_path=[str(SHIPPED_TASKS), str(tasks_dir)])
    return lm_eval.simple_evaluate(
        model=model,
        model_args=model_args or None,
        tasks=TASKS,
        num_fewshot=1,
        limit=8,
        task_manager=manager,
        log_samples=True,
        bootstrap_iters=0,
    )


def _responses(results: dict, task: str) -> list:
    samples = sorted(results["samples"][task], key=lambda s: s["doc_id"])
    return [resp for sample in samples for resp in sample["filtered_resps"]]


@pytest.mark.parametrize("family", ["gpt2", "t5"])
def test_per_request_loglikelihoods_and_metrics_equal_the_hf_backend(
    family: str, tmp_path: Path
) -> None:
    if family == "gpt2":
        hf_dir = save_with_tokenizer("gpt2", tmp_path / "hf")
    else:
        hf_dir = _t5_with_tokenizer(tmp_path / "hf")
    ckpt = convert_from_hf(hf_dir, tmp_path / "model.ckpt")
    exported = convert_to_hf(ckpt, tmp_path / "exported")
    tasks_dir = _rolling_task(tmp_path)
    hf = _run(
        "hf",
        tasks_dir,
        pretrained=str(exported),
        device="cpu",
        dtype="float32",
        batch_size=3,
        max_length=MAX_LENGTH,
    )
    ours = _run(XformersLabLM(ckpt=str(ckpt), batch_size=3, max_length=MAX_LENGTH), tasks_dir)
    compared, generated = 0, []
    for task in TASKS:
        theirs, mine = _responses(hf, task), _responses(ours, task)
        assert len(mine) == len(theirs) > 0
        for a, b in zip(mine, theirs, strict=True):
            if isinstance(a, str):  # generate_until
                # the HF backend lets a seq2seq decoder run to len(context) + max_gen_toks
                # tokens; ours stops at max_gen_toks, so its text is where the HF one starts
                assert a == b if family == "gpt2" else b.startswith(a)
                generated.append(a)
            elif isinstance(a, float):  # loglikelihood_rolling
                assert math.isclose(a, b, abs_tol=1e-4)
            else:
                assert math.isclose(a[0], b[0], abs_tol=1e-4) and a[1] == b[1]
            compared += 1
        for metric, value in hf["results"][task].items():
            if isinstance(value, float) and "stderr" not in metric:
                assert math.isclose(ours["results"][task][metric], value, rel_tol=1e-5), metric
    assert compared == 8 * 4 + 8 + 8 + 6  # mc (4 choices), cloze, gen, rolling
    assert sum(len(text) > 0 for text in generated) >= 4
