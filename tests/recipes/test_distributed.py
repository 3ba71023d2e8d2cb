"""Two processes on torch.distributed (gloo, CPU): one run directory, and metrics equal to a
single process evaluating the same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from seqbench.config import load_config
from seqbench.engine.sasrec import SASRec
from seqbench.errors import SeqbenchError
from seqbench.recipes import encoder_shape, load_resume_state, prepare_context
from seqbench.runs.checkpoint import load_checkpoint
from tests.conftest import SMALL_RUN, epochs_recorded

DATA = {"dataset": "synthetic", "items": 200, "users": 800, "mean_len": 12.0}


@pytest.fixture(autouse=True)
def no_torchrun_leftovers() -> Iterator[None]:
    """torchrun keeps a log directory per launch in the temp directory unless told where:
    the tests (and `--nproc`) must leave none behind."""
    temp = Path(tempfile.gettempdir())
    before = set(temp.glob("torchelastic_*"))
    yield
    assert set(temp.glob("torchelastic_*")) == before


def torchrun_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a torchrun the test starts itself: its logs go under tmp_path."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path), **extra}
MODEL = {"dim": 32, "layers": 1, "heads": 1, "max_len": 20, "dropout": 0.2}


def test_two_process_training_writes_one_run_and_evaluates_exactly(tmp_path: Path) -> None:
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node=2", "-m", "seqbench", "bench", "--items", "200", "--users",
               "800", "--mean-len", "12", "--dim", "32", "--layers", "1", "--heads", "1",
               "--max-len", "20", "--epochs", "2", "--batch-size", "64",
               "--protocol", "full,sampled-99", "--runs-dir", str(runs)]
    env = torchrun_env(tmp_path, SEQBENCH_CACHE=str(cache))
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run] = list(runs.iterdir())  # only rank 0 records
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert config["resolved"]["processes"] == 2
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2]

    # the recorded test metrics (gathered over 2 ranks) == one process on the same weights
    cfg = load_config(None, {"data": {**DATA, "data_dir": str(cache)}, "model": MODEL,
                             "train": {"runs_dir": str(tmp_path / "unused")},
                             "eval": {"protocol": ["full", "sampled-99"]}})
    context = prepare_context(cfg)
    model = SASRec(encoder_shape(cfg, context.dataset.num_items))
    model.load_state_dict(load_checkpoint(run / "best.pt")["model"])
    model.eval()
    with torch.no_grad():
        alone = context.test(model)
    assert alone == summary["test"]


def test_two_process_pretraining_and_finetuning_record_once_each(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node=2", "-m", "seqbench", "pretrain", "--items", "200",
               "--users", "800", "--mean-len", "12", "--dim", "32", "--layers", "1", "--heads",
               "1", "--max-len", "20", "--epochs", "2", "--rank", "4",
               "--finetune", "--runs-dir", str(runs)]
    env = torchrun_env(tmp_path, SEQBENCH_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = {json.loads((run / "config.json").read_text())["resolved"]["model"]:
                 json.loads((run / "summary.json").read_text()) for run in runs.iterdir()}
    assert set(summaries) == {"s3rec-pretrain", "s3rec"}  # one run each, from rank 0
    pre = summaries["s3rec-pretrain"]
    assert pre["final_losses"]["loss"] < pre["first_losses"]["loss"]
    assert summaries["s3rec"]["test"]["sampled-99"]["NDCG@10"] > 0


BENCH = ["bench", *SMALL_RUN]


def _replaced(args: list[str], option: str, value: str) -> list[str]:
    at = args.index(option)
    return [*args[:at + 1], value, *args[at + 2:]]


def _kill_every_process_mentioning(marker: str) -> None:
    """SIGKILL each process whose command line holds `marker` (torchrun starts its workers in
    sessions of their own, so killing the launcher's process group would miss them)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                os.kill(int(entry.name), signal.SIGKILL)
        except OSError:
            pass  # ended meanwhile


def test_two_process_run_killed_and_resumed_ends_exactly_as_left_alone(tmp_path: Path) -> None:
    env = torchrun_env(tmp_path, SEQBENCH_CACHE=str(tmp_path / "cache"))

    def seqbench(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "seqbench", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finished(*args: str) -> None:
        proc = seqbench(*args)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]

    finished(*BENCH, "--nproc", "2", "--runs-dir", str(tmp_path / "reference"))
    [path] = (tmp_path / "reference").glob("*/summary.json")
    expected = json.loads(path.read_text())

    runs = tmp_path / "runs"
    proc = seqbench(*BENCH, "--nproc", "2", "--runs-dir", str(runs))
    deadline = time.monotonic() + 120
    while epochs_recorded(runs) < 2:  # kill every process of it during epoch 3
        assert proc.poll() is None and time.monotonic() < deadline, "run ended too early"
        time.sleep(0.01)
    _kill_every_process_mentioning(str(runs))  # the launcher and both ranks, at once
    proc.communicate(timeout=60)
    [run] = runs.iterdir()
    assert 2 <= epochs_recorded(runs) < 5

    # each rank continues its own random streams: resuming with another count is refused
    cfg = load_config(None, {"data": {**DATA, "data_dir": str(tmp_path / "cache")},
                             "model": MODEL, "train": {"runs_dir": str(tmp_path / "unused")}})
    with pytest.raises(SeqbenchError, match="trained with 2 processes but resumed with 1 "
                                            "process; resume it with 2"):
        load_resume_state(run, prepare_context(cfg).dataset)

    finished("bench", "--resume", str(run))  # starts the two processes itself
    resumed = json.loads((run / "summary.json").read_text())
    assert resumed["status"] == "finished"
    assert resumed["test"] == expected["test"] and resumed["valid"] == expected["valid"]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2, 3, 4, 5]


def test_cce_under_two_processes_trains_like_ce(tmp_path: Path) -> None:
    """CCE's item-table gradient comes from its own autograd function, outside the model's
    forward: DDP must still average it, or the ranks drift apart and cce stops matching ce."""
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node=2", "-m", "seqbench", *_replaced(BENCH, "--epochs", "2"),
               "--loss", "ce,cce", "--runs-dir", str(runs)]
    env = torchrun_env(tmp_path, SEQBENCH_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    weights = {}
    for run in runs.iterdir():
        config = json.loads((run / "config.json").read_text())
        assert config["resolved"]["processes"] == 2
        weights[config["resolved"]["loss_backend"]] = load_checkpoint(run / "last.pt")["model"]
    assert set(weights) == {"ce[torch]", "cce[cpu-blockwise]"}
    # (one process vs two differ by ~3e-2 here: the tolerance tells averaging schemes apart)
    for name, tensor in weights["ce[torch]"].items():
        torch.testing.assert_close(weights["cce[cpu-blockwise]"][name], tensor,
                                   rtol=1e-3, atol=1e-4, msg=name)
