"""Every mistake on the command line: one `error:` line on stderr, exit 2, no traceback, and
(when caught at config time) no run directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

CONFIG_TIME = [
    (["model=nope"], "unknown model 'nope'; choose one of: bert, bert_original, gpt, llama"),
    (["task=nope"], "unknown task 'nope'"),
    (["tokenizer=nope"], "unknown tokenizer 'nope'"),
    (["trainer=nope"], "unknown trainer 'nope'"),
    (["model.d_model=100", "model.n_heads=3"], "divisible by n_heads"),
    (["model.n_heads=4", "model.n_kv_heads=3"], "divisible by n_kv_heads"),
    (["model.n_layers=0"], "n_layers must be positive"),
    (["model.position=xyz"], "unknown position 'xyz'"),
    (["model.n_layers=abc"], "model.n_layers must be int"),
    (["model.nope=1"], "unknown key model.nope"),
    (["data.seq_len=5000"], "exceeds model.max_seq_len"),
    (["trainer.max_steps=0"], "max_steps must be positive"),
    (["trainer.precision=16-mixed"], "needs a GPU"),
    (["trainer.precision=fp8"], "precision must be one of"),
    (["optim.lr=-1"], "optim:"),
    (["scheduler.warmup_steps=-1"], "scheduler: scheduler warmup_steps must be >= 0"),
    (["seed=abc"], "seed must be an int"),
    (["data=text"], "data.path"),
    (["data=text", "data.path=/nonexistent/corpus.txt"], "/nonexistent/corpus.txt"),
    (["-m", "model=gpt,nope"], "unknown model 'nope'"),
    (["model.n_layers=2,"], "cannot"),
    (
        ["model=gpt", "task=mlm"],
        "task=mlm trains encoder models but model.arch=decoder; valid pairs:",
    ),
    (
        ["model=bert", "task=clm"],
        "task=clm trains decoder models but model.arch=encoder; valid pairs:",
    ),
    (["model=bert", "task=mlm", "task.mask_prob=0"], "task: mask_prob must be in (0, 1]"),
    (["model=bert", "task=mlm", "task.keep_token=0.2"], "must sum to 1"),
    (["model=bert", "task=classify"], "examples cannot come from data=pystdlib"),
    (["optim=nope"], "unknown optim 'nope'; choose one of: adamw"),
    (["scheduler=nope"], "unknown scheduler 'nope'; choose one of: constant, warmup_cosine"),
    (["data=nope"], "unknown data 'nope'; choose one of: hf, pystdlib, text"),
    (["trainer.nope=1"], "unknown key trainer.nope (valid keys of trainer: accelerator"),
    (["data.nope=1"], "unknown key data.nope"),
    (["model.dropout=abc"], "model.dropout must be float"),
    (["trainer.deterministic=maybe"], "trainer.deterministic must be bool"),
    (["data.batch_size=0"], "batch_size"),
    (["data.seq_len=0"], "seq_len"),
    (["data.batch_size=-4"], "batch_size"),
    (["model.d_model=-8"], "d_model"),
    (["model=t5", "task=clm"], "task=clm trains decoder models but model.arch=encoder_decoder"),
    (["model=t5", "task=span", "data.seq_len=600"], "exceeds model.max_seq_len"),
    (["trainer.accelerator=gpu"], "no CUDA GPU is visible"),
    (["trainer.precision=bf16-true", "trainer.accelerator=gpu"], "no CUDA GPU is visible"),
    (["trainer.strategy=nope"], "trainer: unknown strategy 'nope'; choose one of: auto, ddp"),
    (["trainer.strategy=ddp", "trainer.accelerator=gpu", "trainer.devices=8"], "no CUDA GPU"),
    (["trainer=ddp"], "no CUDA GPU is visible; use trainer=cpu (or, for DDP/FSDP over CPU"),
    (["trainer=fsdp", "trainer.accelerator=cpu", "trainer.nonfinite=rollback"], "use skip"),
    (["trainer.compile=maybe"], "trainer.compile must be bool"),
    (["model.activation_checkpointing=2"], "activation_checkpointing"),
    (["trainer.devices=0"], "trainer: devices must be positive"),
    (["trainer.devices=many"], "trainer: devices must be a positive int or auto"),
    (["trainer.num_nodes=0"], "trainer: num_nodes must be positive"),
    (["trainer.accumulate_grad_batches=0"], "accumulate_grad_batches must be positive"),
    (["trainer.resume=/nonexistent/last.ckpt"], "checkpoint /nonexistent/last.ckpt does not exist"),
    (["init_from=/nonexistent/best.ckpt"], "checkpoint /nonexistent/best.ckpt does not exist"),
    (["trainer.nonfinite=ignore"], "nonfinite must be one of stop, skip, rollback"),
    (["trainer.nonfinite_lr_factor=2"], "nonfinite_lr_factor must be in (0, 1)"),
    (["trainer.checkpoint_every_n_steps=0"], "checkpoint_every_n_steps must be positive"),
    (["trainer.min_free_gb=1e12"], "less than trainer.min_free_gb=1e+12"),
]
IDS = [" ".join(args) for args, _ in CONFIG_TIME]


@pytest.mark.parametrize(
    ("args", "message"), CONFIG_TIME, ids=[" ".join(a) for a, _ in CONFIG_TIME]
)
def test_config_mistakes_fail_in_one_line_before_any_run_dir(
    train_main, capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    code = train_main([*args, f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert_one_line(err, message)
    assert not (tmp_path / "run").exists()


def test_an_output_dir_that_cannot_be_created_fails_in_one_line(
    train_main, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert train_main([f"hydra.run.dir={blocker / 'run'}"]) == 2
    assert_one_line(capsys.readouterr().err, f"cannot create the run directory {blocker / 'run'}")


class _RunsCode:
    """Unpickling it touches `marker`: a stand-in for code hidden in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("key", ["trainer.resume", "init_from"])
def test_checkpoints_that_would_run_code_or_are_truncated_are_refused_by_name(
    train_main, capsys: pytest.CaptureFixture[str], tmp_path: Path, key: str
) -> None:
    evil, truncated = tmp_path / "evil.ckpt", tmp_path / "truncated.ckpt"
    torch.save({"global_step": 1, "optimizer_states": [_RunsCode(tmp_path / "ran")]}, evil)
    torch.save({"global_step": 1, "optimizer_states": [torch.zeros(1000)]}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    for path in (evil, truncated):
        code = train_main([f"{key}={path}", f"hydra.run.dir={tmp_path / 'run'}"])
        assert code == 2
        assert_one_line(capsys.readouterr().err, f"checkpoint {path} ")
    assert not (tmp_path / "ran").exists() and not (tmp_path / "run").exists()


def test_a_mismatch_lists_every_valid_pair(train_main, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_main(["model=gpt", "task=mlm"]) == 2
    error = capsys.readouterr().err
    for pair in ("task=clm with model=gpt|llama", "task=mlm with model=bert"):
        assert pair in error
    assert "task=classify with model=bert" in error


@pytest.fixture
def labelled_csv(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\n" + "".join(f"review {i},{i % 2}\n" for i in range(40)))
    return path


@pytest.fixture
def gpt_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint of a decoder, in the format `train` writes (no training needed)."""
    from xformers_lab.core import TransformerConfig, build_model
    from xformers_lab.data.tokenizers import ByteTokenizer

    tokenizer = ByteTokenizer(n_sentinels=0)
    config = TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=32, n_heads=2, n_layers=1)
    weights = {f"model.{k}": v for k, v in build_model(config).state_dict().items()}
    payload = {"task": "clm", "model_config": config.to_dict(), "tokenizer": tokenizer.state_dict()}
    path = tmp_path / "gpt.ckpt"
    torch.save({"state_dict": weights, "xformers_lab": payload}, path)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["task.pooling=max"], "unknown pooling 'max'; choose one of: cls, mean"),
        (["task.num_labels=1"], "num_labels must be at least 2"),
        (["init_from=/nonexistent/best.ckpt"], "checkpoint /nonexistent/best.ckpt does not exist"),
        (
            ["init_from=GPT"],
            "holds a decoder model (trained with task=clm) but task=classify trains encoder models",
        ),
        (["data.path=/nonexistent/reviews.csv"], "/nonexistent/reviews.csv' does not exist"),
    ],
)
def test_classify_mistakes_fail_in_one_line_before_any_run_dir(
    train_main,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    labelled_csv: Path,
    gpt_checkpoint: Path,
    args: list[str],
    message: str,
) -> None:
    args = [a.replace("=GPT", f"={gpt_checkpoint}") for a in args]
    base = ["model=bert", "task=classify", "data=text", f"data.path={labelled_csv}"]
    code = train_main([*base, *args, f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert_one_line(err, message)
    assert not (tmp_path / "run").exists()


def test_labelled_examples_need_structured_files(
    train_main, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "reviews.txt").write_text("great film\n")
    args = ["model=bert", "task=classify", "data=text", f"data.path={tmp_path / 'reviews.txt'}"]
    assert train_main(args) == 2
    assert_one_line(capsys.readouterr().err, "is not csv, jsonl/json or parquet")


def test_empty_corpus_fails_in_one_line(
    train_main, capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny: list[str]
) -> None:
    (tmp_path / "empty.txt").write_text("   \n\n  ")
    overrides = [o for o in tiny if not o.startswith("data.max_bytes")]  # a pystdlib option
    code = train_main(["data=text", f"data.path={tmp_path / 'empty.txt'}", *overrides])
    err = capsys.readouterr().err
    assert code == 2, err
    assert_one_line(err, "empty")


def test_real_command_line_exits_2_with_one_line(tmp_path: Path, run_cli) -> None:
    result = run_cli("xformers_lab.train", ["model=nope"], cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line(result.stderr, "unknown model 'nope'")
    assert not (tmp_path / "outputs").exists()


def assert_one_line(stderr: str, message: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert message in errors[0], errors[0]
    assert "Traceback" not in stderr
