"""`seqbench sync` against the real trackers: an MLflow file store read back with MlflowClient,
TensorBoard event files read back with EventAccumulator. Runs are the recorded 0.1.0 fixtures
(copied, no training) and one run written here in the current format with two protocols."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from seqbench.runs.read import read_run
from seqbench.runs.schema import EpochRecord, RunSummary
from seqbench.track.records import metric_name, run_record
from tests.conftest import Cli

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs-0.1.0"
CE = "20261203-081247-synthetic-sasrec-ce-s0-fb94"
CCE = "20261203-081251-synthetic-sasrec-cce-s0-048f"
FAILED = "20261203-081255-synthetic-sasrec-ce-s0-387b"
PRETRAIN = "20261203-081259-synthetic-s3rec_pretrain-r4-s0-77dd"
FINETUNE = "20261203-081304-synthetic-s3rec-bce-s0-7754"
CURRENT = "20261204-120000-synthetic-sasrec-sampled-s1-abcd"


@pytest.fixture(autouse=True)
def _no_file_store_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow 3 refuses file stores unless MLFLOW_ALLOW_FILE_STORE is set: sync must set it
    itself for a file URI (and the variable is restored after each test)."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "unset-by-test")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """The 0.1.0 fixture runs (without checkpoints) plus a current-format run."""
    runs = Path(shutil.copytree(FIXTURES, tmp_path / "runs",
                                ignore=shutil.ignore_patterns("*.pt")))
    write_current_run(runs / CURRENT)
    return runs


def write_current_run(path: Path, *, epochs: int = 3) -> None:
    """A finished next-item run as today's trainer writes it, validated under full ranking
    and sampled-99, so the two protocols must stay apart."""
    path.mkdir(parents=True)
    config = {"data": {"dataset": "synthetic", "items": 50},
              "model": {"dim": 8, "layers": 1},
              "train": {"loss": "sampled", "seed": 1, "epochs": epochs, "time_limit": None},
              "eval": {"protocol": ["full", "sampled-99"], "k": [10]},
              "resolved": {"model": "sasrec", "loss_backend": "sampled[shared-256]",
                           "device": "cpu (2 cores)", "parameters": 1234,
                           "dataset_stats": {"users": 40}},
              "environment": {"run_id": path.name, "hostname": "elsewhere", "pid": 1,
                              "seqbench": "0.2.0", "started_unix": 1796385600.0}}
    (path / "config.json").write_text(json.dumps(config))
    lines = [{"event": "start", "time": 1796385600.5, "run_id": path.name, "pid": 1}]
    for epoch in range(1, epochs + 1):
        record = EpochRecord(epoch=epoch, losses={"loss": 5.0 - epoch}, seconds=1.5,
                             sequences_per_second=100.0, peak_memory_bytes=1000 * epoch,
                             memory_kind="cpu-rss",
                             valid={"full": {"HR@10": 0.1 * epoch, "NDCG@10": 0.05 * epoch},
                                    "sampled-99": {"HR@10": 0.5 + 0.1 * epoch,
                                                   "NDCG@10": 0.3 + 0.05 * epoch}},
                             valid_seconds=0.2, improved=True)
        lines.append({"event": "epoch", "time": 1796385600.0 + 10 * epoch,
                      **record.to_event(device="cpu")})
    lines.append({"event": "end", "time": 1796385700.0, "status": "finished", "seconds": 99})
    (path / "events.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = RunSummary(dataset="synthetic", model="sasrec", seed=1, device="cpu (2 cores)",
                         parameters=1234, epochs_run=epochs, stop_reason="epochs",
                         mean_epoch_seconds=1.5, peak_memory_bytes=1000 * epochs,
                         memory_kind="cpu-rss", sequences_per_second=100.0, run_id=path.name,
                         loss="sampled", loss_backend="sampled[shared-256]",
                         best_epoch=epochs, stopped_early=False,
                         test={"full": {"HR@10": 0.25, "NDCG@10": 0.125},
                               "sampled-99": {"HR@10": 0.75, "NDCG@10": 0.5}})
    (path / "summary.json").write_text(json.dumps({"status": "finished",
                                                   **summary.to_json()}))


def mlflow_runs(uri: str, experiment: str = "seqbench") -> dict[str, Any]:
    """The MLflow runs of `experiment`, by their seqbench run id."""
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    runs = client.search_runs([found.experiment_id], max_results=1000)
    by_id: dict[str, Any] = {}
    for run in runs:
        run_id = run.data.tags["seqbench.run_id"]
        assert run_id not in by_id, f"two MLflow runs for {run_id}"
        by_id[run_id] = run
    return by_id


def history(uri: str, run: Any, key: str) -> list[tuple[int, float]]:
    metrics = MlflowClient(tracking_uri=uri).get_metric_history(run.info.run_id, key)
    return sorted((m.step, m.value) for m in metrics)


def artifacts(uri: str, run: Any) -> set[str]:
    return {a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(run.info.run_id)}


def scalars(logdir: Path, run_id: str) -> EventAccumulator:
    accumulator = EventAccumulator(str(logdir / run_id))
    accumulator.Reload()
    return accumulator


def steps(accumulator: EventAccumulator, tag: str) -> list[int]:
    return [event.step for event in accumulator.Scalars(tag)]


def summary_test(runs: Path, run_id: str) -> dict[str, dict[str, float]]:
    return json.loads((runs / run_id / "summary.json").read_text())["test"]


def sync_ok(cli: Cli, *args: str) -> str:
    result = cli("sync", *args)
    assert result.code == 0, result.err
    return result.out


# ---------------------------------------------------------------------------------------------
# names


def test_metric_names_carry_the_protocol_and_only_characters_mlflow_allows() -> None:
    assert metric_name("valid", "full", "NDCG@10") == "valid/full/NDCG_at_10"
    assert metric_name("test", "sampled-99", "HR@10") == "test/sampled-99/HR_at_10"
    assert metric_name("train", "a/b:c") == "train/a_b_c"  # no extra level, no colon
    assert metric_name("x", "..", "") == "x/_/_"  # never a path that resolves elsewhere


def test_records_from_a_pretraining_have_losses_only() -> None:
    record = run_record(read_run(FIXTURES / PRETRAIN))
    names = {name for row in record.epochs for name in row.values}
    assert {"train/loss", "train/aap", "train/mip", "train/map", "train/sp"} <= names
    assert not any(name.startswith(("valid/", "test/")) for name in names | set(record.final))
    assert record.params["resolved.model"] == "s3rec-pretrain"
    assert record.params["resolved.variant"] == "r4"


# ---------------------------------------------------------------------------------------------
# MLflow


def test_mlflow_file_store_gets_params_metrics_by_epoch_test_summary_and_status(
        cli: Cli, runs: Path, tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/mlruns"
    out = sync_ok(cli, "--runs-dir", str(runs), "--mlflow", uri)
    assert CE in out and "+2 epochs" in out
    synced = mlflow_runs(uri)
    assert set(synced) == {CE, CCE, FAILED, PRETRAIN, FINETUNE, CURRENT}

    ce = synced[CE]
    assert ce.info.status == "FINISHED" and ce.info.run_name == CE
    assert ce.data.params["train.loss"] == "ce"
    assert ce.data.params["model.dim"] == "16"
    assert ce.data.params["eval.ks"] == "[5, 10]"
    assert ce.data.params["resolved.model"] == "sasrec"
    assert ce.data.params["resolved.loss_backend"] == "ce[torch]"
    assert ce.data.params["data.dataset"] == "synthetic"
    assert ce.data.tags["seqbench.status"] == "finished"
    assert ce.data.tags["seqbench.split"] == "loo"  # every 0.1.0 run is leave-one-out
    assert [step for step, _ in history(uri, ce, "train/loss")] == [1, 2]
    assert [step for step, _ in history(uri, ce, "valid/full/NDCG_at_10")] == [1, 2]
    assert [step for step, _ in history(uri, ce, "perf/peak_memory_bytes")] == [1, 2]
    assert [step for step, _ in history(uri, ce, "perf/epoch_seconds")] == [1, 2]
    test = summary_test(runs, CE)["full"]
    assert ce.data.metrics["test/full/HR_at_10"] == pytest.approx(test["HR@10"])
    assert history(uri, ce, "test/full/HR_at_10")[0][0] == 2  # at the best epoch
    assert "baseline/test/full/HR_at_10" in ce.data.metrics
    assert {"summary.json", "config.json"} <= artifacts(uri, ce)

    current = synced[CURRENT]
    full = history(uri, current, "valid/full/HR_at_10")
    sampled = history(uri, current, "valid/sampled-99/HR_at_10")
    assert [v for _, v in full] == pytest.approx([0.1, 0.2, 0.3])
    assert [v for _, v in sampled] == pytest.approx([0.6, 0.7, 0.8])  # never mixed
    assert current.data.metrics["test/sampled-99/NDCG_at_10"] == pytest.approx(0.5)
    assert current.data.metrics["test/full/NDCG_at_10"] == pytest.approx(0.125)

    pretrain = synced[PRETRAIN]
    assert pretrain.info.status == "FINISHED"
    assert [step for step, _ in history(uri, pretrain, "train/aap")] == [1, 2]
    assert not any(key.startswith(("valid/", "test/")) for key in pretrain.data.metrics)

    failed = synced[FAILED]
    assert failed.info.status == "FAILED"
    assert "Diverged" in failed.data.tags["seqbench.error"]
    assert "summary.json" in artifacts(uri, failed)


def test_mlflow_sync_twice_makes_no_duplicates(cli: Cli, runs: Path, tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/mlruns"
    sync_ok(cli, "--runs-dir", str(runs), "--mlflow", uri, "--experiment", "bench")
    first = mlflow_runs(uri, "bench")
    lengths = {run_id: {key: len(history(uri, run, key)) for key in run.data.metrics}
               for run_id, run in first.items()}
    out = sync_ok(cli, "--runs-dir", str(runs), "--mlflow", uri, "--experiment", "bench")
    assert "up to date" in out and "new" not in out
    second = mlflow_runs(uri, "bench")
    assert {r: run.info.run_id for r, run in second.items()} == {
        r: run.info.run_id for r, run in first.items()}
    assert {run_id: {key: len(history(uri, run, key)) for key in run.data.metrics}
            for run_id, run in second.items()} == lengths


def cut_to_first_epoch(run_dir: Path) -> str:
    """Make `run_dir` look like a run still training on another machine after one epoch; the
    full events.jsonl is returned to put back."""
    events = run_dir / "events.jsonl"
    text = events.read_text()
    lines = text.splitlines(keepends=True)
    first_epoch = next(i for i, line in enumerate(lines) if '"event": "epoch"' in line)
    events.write_text("".join(lines[:first_epoch + 1]))
    (run_dir / "summary.json").unlink()
    config = json.loads((run_dir / "config.json").read_text())
    config["environment"]["hostname"] = "another-machine"  # its writer cannot be checked
    (run_dir / "config.json").write_text(json.dumps(config))
    return text


def test_a_run_synced_half_way_is_completed_by_a_later_sync(cli: Cli, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURES / CE, runs / CE)
    summary = (runs / CE / "summary.json").read_text()
    full_events = cut_to_first_epoch(runs / CE)
    assert read_run(runs / CE).status == "running"
    uri, logdir = f"file://{tmp_path}/mlruns", tmp_path / "tb"
    args = ("--mlflow", uri, "--tensorboard", str(logdir), str(runs / CE))

    out = sync_ok(cli, *args)
    assert "running" in out and "+1 epoch" in out
    run = mlflow_runs(uri)[CE]
    assert run.info.status == "RUNNING"
    assert [step for step, _ in history(uri, run, "train/loss")] == [1]
    assert not any(key.startswith("test/") for key in run.data.metrics)
    assert "summary.json" not in artifacts(uri, run)
    tb = scalars(logdir, CE)
    assert steps(tb, "train/loss") == [1] and "test/full/HR_at_10" not in tb.Tags()["scalars"]
    state = json.loads((logdir / CE / ".seqbench-sync.json").read_text())
    assert state["last_epoch"] == 1 and state["summary_written"] is False

    (runs / CE / "events.jsonl").write_text(full_events)  # the run went on, and ended
    (runs / CE / "summary.json").write_text(summary)
    out = sync_ok(cli, *args)
    assert "+1 epoch, +summary (1 there)" in out
    run = mlflow_runs(uri)[CE]
    assert run.info.status == "FINISHED" and run.info.end_time is not None
    assert [step for step, _ in history(uri, run, "train/loss")] == [1, 2]
    assert [step for step, _ in history(uri, run, "valid/full/HR_at_10")] == [1, 2]
    assert "test/full/HR_at_10" in run.data.metrics
    assert "summary.json" in artifacts(uri, run)
    tb = scalars(logdir, CE)
    assert steps(tb, "train/loss") == [1, 2]
    assert steps(tb, "test/full/HR_at_10") == [2]


# ---------------------------------------------------------------------------------------------
# TensorBoard


def test_tensorboard_event_files_read_back_by_step_without_duplicates(
        cli: Cli, runs: Path, tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    sync_ok(cli, "--runs-dir", str(runs), "--tensorboard", str(logdir))
    assert {p.name for p in logdir.iterdir()} == {CE, CCE, FAILED, PRETRAIN, FINETUNE, CURRENT}
    ce = scalars(logdir, CE)
    assert steps(ce, "train/loss") == [1, 2]
    assert steps(ce, "valid/full/NDCG_at_10") == [1, 2]
    assert steps(ce, "perf/peak_memory_bytes") == [1, 2]
    expected = summary_test(runs, CE)["full"]["HR@10"]
    assert ce.Scalars("test/full/HR_at_10")[0].value == pytest.approx(expected, rel=1e-6)
    assert {"params", "summary"} <= set(ce.Tags()["tensors"])
    text = ce.Tensors("summary")[0].tensor_proto.string_val[0].decode()
    assert '"best_epoch": 2' in text
    current = scalars(logdir, CURRENT)
    assert [e.value for e in current.Scalars("valid/sampled-99/HR_at_10")] == pytest.approx(
        [0.6, 0.7, 0.8])
    pretrain = scalars(logdir, PRETRAIN)
    assert steps(pretrain, "train/sp") == [1, 2]
    assert not any(t.startswith(("valid/", "test/")) for t in pretrain.Tags()["scalars"])

    files = sorted((logdir / CE).glob("events.out.tfevents.*"))
    out = sync_ok(cli, "--runs-dir", str(runs), "--tensorboard", str(logdir))
    assert "up to date" in out
    assert sorted((logdir / CE).glob("events.out.tfevents.*")) == files  # nothing new
    assert steps(scalars(logdir, CE), "train/loss") == [1, 2]


def test_tensorboard_refuses_a_run_directory_it_did_not_write(cli: Cli, runs: Path,
                                                              tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    (logdir / CE).mkdir(parents=True)
    (logdir / CE / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    result = cli("sync", "--runs-dir", str(runs), "--tensorboard", str(logdir))
    assert_one_line_error(result, ".seqbench-sync.json")
    assert sorted(p.name for p in logdir.iterdir()) == [CE]  # nothing else written


# ---------------------------------------------------------------------------------------------
# bad input: one line, non-zero exit, nothing written


def assert_one_line_error(result: Any, *fragments: str) -> str:
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_without_a_target_it_says_so(cli: Cli, runs: Path) -> None:
    assert_one_line_error(cli("sync", "--runs-dir", str(runs)), "--mlflow", "--tensorboard")


def test_an_unreachable_mlflow_server_fails_fast_and_writes_nothing(
        cli: Cli, runs: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    logdir = tmp_path / "tb"
    start = time.monotonic()
    result = cli("sync", "--runs-dir", str(runs), "--mlflow", f"http://127.0.0.1:{port}",
                 "--tensorboard", str(logdir))
    assert time.monotonic() - start < 20
    assert_one_line_error(result, f"http://127.0.0.1:{port}", "Connection refused")
    assert not logdir.exists()


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_a_file_uri_that_cannot_be_created(cli: Cli, runs: Path, tmp_path: Path,
                                           where: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file\n")
    store = blocker / "mlruns" if where == "under-a-file" else Path("/proc/seqbench-mlruns")
    if where == "proc" and not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    logdir = tmp_path / "tb"
    result = cli("sync", "--runs-dir", str(runs), "--mlflow", f"file://{store}",
                 "--tensorboard", str(logdir))
    assert_one_line_error(result, f"file://{store}")
    assert not logdir.exists() and not store.exists()


def test_a_run_argument_that_is_not_a_run(cli: Cli, runs: Path, tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    result = cli("sync", str(runs / CE), str(tmp_path), "--tensorboard", str(logdir))
    assert_one_line_error(result, str(tmp_path), "not a run directory")
    assert not logdir.exists()


def test_an_empty_runs_dir(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    logdir = tmp_path / "tb"
    result = cli("sync", "--runs-dir", str(tmp_path / "empty"), "--tensorboard", str(logdir))
    assert_one_line_error(result, "no runs to sync", str(tmp_path / "empty"))
    assert not logdir.exists()


def test_a_tensorboard_dir_that_is_a_file(cli: Cli, runs: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "tb.txt"
    blocker.write_text("keep me\n")
    result = cli("sync", "--runs-dir", str(runs), "--tensorboard", str(blocker),
                 "--mlflow", f"file://{tmp_path}/mlruns")
    assert_one_line_error(result, str(blocker), "is a file")
    assert blocker.read_text() == "keep me\n" and not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize(("option", "package"), [("--mlflow", "mlflow"),
                                                 ("--tensorboard", "tensorboard")])
def test_a_missing_tracker_package_is_one_line_with_the_install_hint(
        cli: Cli, runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        option: str, package: str) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real(name, *a))
    result = cli("sync", "--runs-dir", str(runs), option, str(tmp_path / "out"))
    line = assert_one_line_error(result)
    assert line == f'error: sync {option} needs {package}: pip install "seqbench[track]"'
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------


def test_sync_never_imports_torch(runs: Path, tmp_path: Path) -> None:
    code = ("import sys\n"
            "from seqbench.cli import main\n"
            f"main(['sync', '--runs-dir', {str(runs)!r}, '--mlflow', "
            f"{f'file://{tmp_path}/mlruns'!r}, '--tensorboard', {str(tmp_path / 'tb')!r}])\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "tb" / CE).is_dir()


def test_a_setting_changed_after_the_first_sync_is_a_warning_not_an_error(
        cli: Cli, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURES / CE, runs / CE)
    uri = f"file://{tmp_path}/mlruns"
    sync_ok(cli, "--mlflow", uri, str(runs / CE))
    config = json.loads((runs / CE / "config.json").read_text())
    config["train"]["time_limit_min"] = 30  # what a resume with a new --time-limit writes
    (runs / CE / "config.json").write_text(json.dumps(config))
    result = cli("sync", "--mlflow", uri, str(runs / CE))
    assert result.code == 0, result.err
    assert "train.time_limit_min" in result.err and result.err.startswith("warning: ")
    assert mlflow_runs(uri)[CE].data.params["train.time_limit_min"] == "null"
