"""`logger=wandb` end to end: the logger group composes alone and with csv, bad options cost one
line, and a real 2-job sweep without an API key leaves offline W&B runs holding the flat config,
the metrics, the samples table, the checkpoints, names from the sweep and one group."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from wandb.proto import wandb_internal_pb2 as pb

from xformers_lab.cli import compose_config

BLOCK, HEADER = 32768, 7  # the .wandb file is a LevelDB-style log: 32 KiB blocks of records


def records(path: Path) -> Iterator[pb.Record]:
    """The records of an offline run's `.wandb` file (wandb's own reader is not public)."""
    raw, pos, chunks = path.read_bytes(), HEADER, b""
    assert raw.startswith(b":W&B")
    while pos + HEADER <= len(raw):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + HEADER])
        chunks += raw[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(chunks)
            yield record
            chunks = b""


@pytest.mark.parametrize(
    ("choice", "nodes"),
    [([], ["csv"]), (["logger=wandb"], ["wandb"]), (["logger=[csv,wandb]"], ["csv", "wandb"])],
)
def test_the_logger_group_composes_alone_and_together(choice: list[str], nodes: list[str]) -> None:
    cfg = compose_config("train", choice)
    assert list(cfg.logger) == nodes
    if "wandb" in nodes:
        assert cfg.logger.wandb.mode == "auto" and cfg.logger.wandb.log_checkpoints is False


def test_a_bad_wandb_option_costs_one_line(
    train_main, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = train_main(["logger=[csv,wandb]", "logger.wandb.mode=onlin"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: logger.wandb.mode must be one of")
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


@pytest.fixture(scope="module")
def offline_sweep(tmp_path_factory: pytest.TempPathFactory, tiny: list[str], run_cli) -> Path:
    """Two jobs logged to csv and wandb with no API key anywhere: W&B runs offline."""
    root = tmp_path_factory.mktemp("wandb")
    args = ["-m", *[a for a in tiny if not a.startswith("optim.lr=")], "optim.lr=3e-3,1e-3",
            "logger=[csv,wandb]", "logger.wandb.samples_every_n_steps=15",
            "logger.wandb.log_checkpoints=true",
            f"hydra.sweep.dir={root / 'sweep'}"]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
            patch.delenv(name, raising=False)
        patch.setenv("NETRC", str(root / "no-netrc"))
        patch.setenv("WANDB_DIR", str(root / "wandb-dir"))
        for name in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):  # artifact staging
            patch.setenv(name, str(root / name.lower()))
        result = run_cli("xformers_lab.train", args, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    hints = [line for line in result.stderr.splitlines() if "no API key" in line]
    assert len(hints) == 2 and "wandb sync " in hints[0]
    return root


def _runs(root: Path) -> dict[str, list[pb.Record]]:
    """Each offline run's records, by run name."""
    runs = {}
    for path in (root / "wandb-dir" / "wandb").glob("offline-run-*/run-*.wandb"):
        recs = list(records(path))
        (run,) = [r.run for r in recs if r.WhichOneof("record_type") == "run"]
        runs[run.display_name] = recs
    return runs


@pytest.mark.slow
def test_offline_runs_hold_config_metrics_names_and_group(offline_sweep: Path) -> None:
    runs = _runs(offline_sweep)
    assert sorted(runs) == ["optim.lr=0.001", "optim.lr=0.003"]  # what the sweep varies
    for name, recs in runs.items():
        (run,) = [r.run for r in recs if r.WhichOneof("record_type") == "run"]
        assert run.run_group == str(offline_sweep / "sweep")
        assert list(run.tags) == ["gpt", "clm"]
        config = {
            u.key: json.loads(u.value_json)
            for r in recs if r.WhichOneof("record_type") == "config" for u in r.config.update
        }  # fmt: skip
        assert config["model.d_model"] == 32 and config["optim.lr"] == float(name.split("=")[1])
        history = [
            {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
            for r in recs if r.WhichOneof("record_type") == "history"
        ]  # fmt: skip
        train = [h for h in history if "train/loss" in h]
        assert len(train) == 6 and train[-1]["train/tokens_seen"] == 30 * 8 * 32
        assert [h["trainer/global_step"] for h in history if "val/loss" in h] == [14, 29]
        assert [h["trainer/global_step"] for h in history if "samples/_type" in h] == [15, 30]
        summary = {
            u.key or "/".join(u.nested_key): json.loads(u.value_json)
            for r in recs if r.WhichOneof("record_type") == "summary" for u in r.summary.update
        }  # fmt: skip
        assert summary["steps"] == 30 and summary["best_val_loss"] > 0  # summary.json's figures
        models = [r.artifact for r in recs if r.WhichOneof("record_type") == "artifact"
                  and r.artifact.type == "model"]  # fmt: skip
        assert any("best" in m.aliases for m in models)  # logger.wandb.log_checkpoints=true
        assert all([c.path for c in m.manifest.contents] == ["model.ckpt"] for m in models)


@pytest.mark.slow
def test_offline_runs_hold_the_samples_table(offline_sweep: Path) -> None:
    tables = sorted(
        (offline_sweep / "wandb-dir" / "wandb").glob(
            "offline-run-*/files/media/table/samples_*.table.json"
        )
    )
    assert len(tables) == 4  # two per run: steps 15 and 30
    latest = max((json.loads(t.read_text()) for t in tables), key=lambda t: len(t["data"]))
    assert latest["columns"] == ["step", "prompt", "completion"]
    assert [row[:2] for row in latest["data"]] == [
        [step, prompt] for step in (15, 30) for prompt in ("def ", "import ", "class ")
    ]
    assert all(isinstance(row[2], str) for row in latest["data"])
    assert (offline_sweep / "sweep" / "0" / "logs" / "metrics.csv").is_file()  # csv as well
