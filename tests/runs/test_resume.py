"""`--resume`: a run killed (SIGKILL) or interrupted (Ctrl-C) mid-training and continued ends
with exactly the metrics of the same run left alone (CPU, same seed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SMALL_RUN as SMALL
from tests.conftest import epochs_recorded


def seqbench(*args: str, cache: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "seqbench", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "SEQBENCH_CACHE": str(cache), "COLUMNS": "400"},
        # background jobs of a non-interactive shell ignore SIGINT; a terminal would not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def finished(args: list[str], cache: Path) -> None:
    proc = seqbench(*args, cache=cache)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()


def summary(runs: Path) -> dict:
    [path] = runs.glob("*/summary.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("reference")
    finished(["bench", *SMALL, "--runs-dir", str(root / "runs")], root / "cache")
    return root / "cache", summary(root / "runs")


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_stopped_run_resumes_to_exactly_the_same_result(
        tmp_path: Path, reference: tuple[Path, dict], signum: int) -> None:
    cache, expected = reference
    runs = tmp_path / "runs"
    proc = seqbench("bench", *SMALL, "--runs-dir", str(runs), cache=cache)
    deadline = time.monotonic() + 120
    while epochs_recorded(runs) < 2:  # stop it during epoch 3
        assert proc.poll() is None and time.monotonic() < deadline, "run ended too early"
        time.sleep(0.02)
    time.sleep(0.1)
    os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    [run] = runs.iterdir()
    assert (run / "last.pt").exists()
    if signum == signal.SIGINT:  # a clean stop says how to continue
        assert "--resume" in err.decode() and str(run) in err.decode()
        assert summary(runs)["status"] == "interrupted"
    recorded_before = epochs_recorded(runs)
    assert 2 <= recorded_before < 5

    finished(["bench", "--resume", str(run)], cache)
    resumed = summary(runs)
    assert resumed["status"] == "finished"
    assert resumed["test"] == expected["test"] and resumed["valid"] == expected["valid"]
    assert resumed["best_epoch"] == expected["best_epoch"]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    epochs = [e["epoch"] for e in events if e["event"] == "epoch"]
    assert epochs == [1, 2, 3, 4, 5]  # each epoch once, even the one cut short
    assert [e["event"] for e in events].count("resumed") == 1


def test_resume_refuses_finished_and_foreign_runs(tmp_path: Path, cli,
                                                  reference: tuple[Path, dict]) -> None:
    _, expected = reference
    result = cli("bench", "--resume", expected["path"])
    assert result.code == 1 and "this run finished; there is nothing to resume" in result.err
    result = cli("pretrain", "--resume", expected["path"])
    assert result.code == 1 and "a bench run; resume it with seqbench bench --resume" in result.err
    result = cli("bench", "--resume", str(tmp_path))
    assert result.code == 1 and "not a seqbench run directory" in result.err


def test_a_run_stopped_by_its_time_limit_goes_on_with_a_longer_one(
        tmp_path: Path, cli, reference: tuple[Path, dict]) -> None:
    cache, expected = reference
    runs = tmp_path / "runs"
    finished(["bench", *SMALL, "--runs-dir", str(runs), "--time-limit", "0.0001"], cache)
    stopped = summary(runs)
    assert stopped["stop_reason"] == "time-limit" and stopped["epochs_run"] == 1
    run = stopped["path"]

    result = cli("bench", "--resume", run)
    assert result.code == 1 and "stopped at its 0.0001-minute time limit" in result.err
    result = cli("bench", "--resume", run, "--time-limit", "0.0001")
    assert result.code == 1 and "longer --time-limit (got 0.0001)" in result.err
    assert json.loads((Path(run) / "summary.json").read_text()) == stopped  # untouched

    finished(["bench", "--resume", run, "--time-limit", "600"], cache)
    extended = summary(runs)
    assert extended["status"] == "finished" and extended["epochs_run"] == 5
    assert extended["test"] == expected["test"] and extended["valid"] == expected["valid"]
    config = json.loads((Path(run) / "config.json").read_text())
    assert config["train"]["time_limit"] == 600  # the record says how it was trained
    events = [json.loads(line) for line in (Path(run) / "events.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2, 3, 4, 5]
    [resumed] = [e for e in events if e["event"] == "resumed"]
    assert resumed["time_limit"] == 600 and resumed["previous_time_limit"] == 0.0001


def test_ctrl_c_during_a_checkpoint_write_waits_for_it() -> None:
    from seqbench.fsutil import interrupts_deferred

    # as in a terminal (a background job of a non-interactive shell ignores SIGINT)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        finished_block = False
        with pytest.raises(KeyboardInterrupt), interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler has run by now; nothing was raised in here
            finished_block = True
        assert finished_block
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)


def test_disk_full_during_a_checkpoint_fails_cleanly_and_the_run_resumes(
        tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch,
        reference: tuple[Path, dict]) -> None:
    import contextlib
    import errno

    import seqbench.runs.checkpoint as checkpoint
    from seqbench.fsutil import atomic_file
    from seqbench.runs.checkpoint import load_checkpoint

    cache, expected = reference
    saves = {"last.pt": 0}

    @contextlib.contextmanager
    def filling_up(path: Path):  # the third last.pt runs out of space after 4 KiB
        with atomic_file(path) as real:
            if path.name == "last.pt":
                saves["last.pt"] += 1
            if saves["last.pt"] != 3 or path.name != "last.pt":
                yield real
                return
            written = 0

            class Full:
                def write(self, data: bytes) -> int:
                    nonlocal written
                    written += len(data)
                    if written > 4096:
                        raise OSError(errno.ENOSPC, "No space left on device")
                    return real.write(data)

                def flush(self) -> None:
                    real.flush()

            yield Full()

    monkeypatch.setenv("SEQBENCH_CACHE", str(cache))
    monkeypatch.setattr(checkpoint, "atomic_file", filling_up)
    runs = tmp_path / "runs"
    result = cli("bench", *SMALL, "--runs-dir", str(runs))
    [run] = runs.iterdir()
    assert result.code == 1
    assert f"cannot save checkpoint {run / 'last.pt'}: No space left on device" in result.err
    assert summary(runs)["status"] == "failed"
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2]
    assert events[-1]["event"] == "failed"
    assert load_checkpoint(run / "last.pt")["epoch"] == 2  # the previous one, whole
    assert not list(run.glob(".*.tmp"))  # no half-written file left behind

    monkeypatch.setattr(checkpoint, "atomic_file", atomic_file)  # space again
    result = cli("bench", "--resume", str(run))
    assert result.code == 0, result.err
    resumed = summary(runs)
    assert resumed["status"] == "finished" and resumed["test"] == expected["test"]
