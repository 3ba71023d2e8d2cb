"""Run records: what a run leaves on disk, and reading it back (also while it is written)."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seqbench.errors import SeqbenchError
from seqbench.runs import checkpoint, record
from seqbench.runs.checkpoint import load_checkpoint
from seqbench.runs.jsonable import to_jsonable
from seqbench.runs.read import list_runs, read_events_since, read_run
from seqbench.runs.record import RunRecorder, check_runs_dir, sanitize_name

REPO = Path(__file__).resolve().parents[2]
RUN_ID = re.compile(r"^\d{8}-\d{6}(-[a-z0-9._]+)*-[0-9a-f]{4}$")


def _create(runs_dir: Path, *parts: str, config: dict[str, Any] | None = None) -> RunRecorder:
    return RunRecorder.create(runs_dir, name_parts=parts or ("ml-1m", "sasrec", "ce"),
                              config=config if config is not None else {"lr": 0.001})


def _strict_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of events.jsonl as strict JSON (NaN/Infinity are not JSON)."""
    text = (path / "events.jsonl").read_text()
    assert text.endswith("\n")
    return [json.loads(line, parse_constant=_no_constants) for line in text.splitlines()]


def _summary(path: Path) -> dict[str, Any]:
    return json.loads((path / "summary.json").read_text())


# --- a run from start to end -------------------------------------------------------------


def test_finished_run_is_complete_and_readable(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    with _create(runs, config={"lr": 0.001, "model": {"dim": 64}}) as rec:
        rec.event("epoch", epoch=1, train_loss=2.5, epoch_seconds=1.25)
        rec.event("epoch", epoch=2, train_loss=2.0, epoch_seconds=1.5)
        rec.finish({"best_epoch": 2, "test": {"ndcg@10": 0.1}})

    assert rec.path.parent == runs and RUN_ID.match(rec.run_id), rec.run_id
    config = json.loads((rec.path / "config.json").read_text())
    assert config["lr"] == 0.001 and config["model"] == {"dim": 64}
    env = config["environment"]
    for key in ("seqbench", "python", "torch", "platform", "cpu_count", "hostname",
                "cuda_devices", "started_at", "started_unix"):
        assert key in env, key
    assert env["torch"] == torch.__version__ and env["run_id"] == rec.run_id

    events = _strict_lines(rec.path)
    assert [e["event"] for e in events] == ["start", "epoch", "epoch", "end"]
    assert [e.get("epoch") for e in events[1:3]] == [1, 2]
    times = [e["time"] for e in events]
    assert times == sorted(times)

    summary = _summary(rec.path)
    assert summary["status"] == "finished" and summary["run_id"] == rec.run_id
    assert summary["best_epoch"] == 2

    view = read_run(rec.path)
    assert view is not None
    assert view.status == "finished" and view.run_id == rec.run_id
    assert view.events == events and view.summary == summary
    assert view.started == pytest.approx(env["started_unix"])
    assert [e["epoch"] for e in view.events_of("epoch")] == [1, 2]
    assert not [p.name for p in rec.path.iterdir() if p.name.startswith(".")]


def test_exception_is_recorded_and_reraised(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="boom at epoch 3"), _create(tmp_path) as rec:
        rec.event("epoch", epoch=1)
        raise ValueError("boom at epoch 3")

    last = _strict_lines(rec.path)[-1]
    assert last["event"] == "failed"
    assert last["error"]["type"] == "ValueError"
    assert last["error"]["message"] == "boom at epoch 3"
    assert "raise ValueError" in last["error"]["traceback"]
    summary = _summary(rec.path)
    assert summary["status"] == "failed" and summary["error"]["message"] == "boom at epoch 3"
    assert read_run(rec.path).status == "failed"  # type: ignore[union-attr]


def test_keyboard_interrupt_is_recorded_as_interrupted(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), _create(tmp_path) as rec:
        raise KeyboardInterrupt

    assert _strict_lines(rec.path)[-1]["event"] == "interrupted"
    assert _summary(rec.path)["status"] == "interrupted"
    assert read_run(rec.path).status == "interrupted"  # type: ignore[union-attr]


def test_leaving_the_block_without_finish_is_a_recorded_bug(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="without a summary"), _create(tmp_path) as rec:
        rec.event("epoch", epoch=1)

    summary = _summary(rec.path)
    assert summary["status"] == "failed"
    assert "without a summary" in summary["error"]["message"]


def test_closed_run_refuses_more_records(tmp_path: Path) -> None:
    rec = _create(tmp_path)
    rec.finish({})
    with pytest.raises(RuntimeError, match="closed"):
        rec.event("epoch", epoch=1)
    with pytest.raises(RuntimeError, match="already finished"):
        rec.finish({})


def test_error_after_finish_keeps_the_finished_record(tmp_path: Path) -> None:
    with pytest.raises(OSError), _create(tmp_path) as rec:
        rec.finish({"best_epoch": 1})
        raise OSError("printing the table failed")
    assert _summary(rec.path)["status"] == "finished"
    assert _strict_lines(rec.path)[-1]["event"] == "end"


# --- reading while a run is being written -------------------------------------------------


def test_torn_last_line_is_ignored_then_picked_up(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    rec = _create(tmp_path)
    rec.event("epoch", epoch=1, train_loss=1.0)
    events_file = rec.path / "events.jsonl"
    line = json.dumps({"event": "epoch", "time": time.time(), "epoch": 2}) + "\n"
    half = len(line) // 2
    with open(events_file, "ab") as f:
        f.write(line[:half].encode())

    caplog.set_level(logging.WARNING)
    caplog.clear()  # only what reading logs matters (creating the run logs at INFO)
    view = read_run(rec.path)
    assert view is not None and view.status == "running"
    assert [e["event"] for e in view.events] == ["start", "epoch"]
    assert not caplog.records  # a torn last line is normal, not worth a warning

    events, offset = read_events_since(rec.path, 0)
    assert [e["event"] for e in events] == ["start", "epoch"]
    assert offset == events_file.stat().st_size - half
    assert read_events_since(rec.path, offset) == ([], offset)

    with open(events_file, "ab") as f:
        f.write(line[half:].encode())
    events, offset2 = read_events_since(rec.path, offset)
    assert events == [json.loads(line)]
    assert offset2 == events_file.stat().st_size

    rec.event("epoch", epoch=3)
    events, _ = read_events_since(events_file, offset2)  # the file itself works too
    assert [e["epoch"] for e in events] == [3]
    rec.finish({})


def test_malformed_line_in_the_middle_is_skipped_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rec = _create(tmp_path)
    with open(rec.path / "events.jsonl", "ab") as f:
        f.write(b'{"event": "epo\n[1, 2]\n\xff\xfe\n')
    rec.event("epoch", epoch=1)
    rec.finish({})

    caplog.set_level(logging.WARNING)
    view = read_run(rec.path)
    assert view is not None and view.status == "finished"
    assert [e["event"] for e in view.events] == ["start", "epoch", "end"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and all("events.jsonl" in r.getMessage() for r in warnings)


def test_read_events_since_handles_missing_and_replaced_files(tmp_path: Path) -> None:
    assert read_events_since(tmp_path / "nothing.jsonl", 5) == ([], 5)
    events_file = tmp_path / "events.jsonl"
    events_file.write_text('{"event": "start"}\n{"event": "epoch"}\n')
    _, offset = read_events_since(events_file, 0)
    events_file.write_text('{"event": "start"}\n')  # replaced by a shorter file
    events, offset = read_events_since(events_file, offset)
    assert events == [{"event": "start"}] and offset == events_file.stat().st_size


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_status_without_summary_follows_the_last_event(tmp_path: Path) -> None:
    rec = _create(tmp_path)
    rec.event("epoch", epoch=1)
    assert read_run(rec.path).status == "running"  # type: ignore[union-attr]
    # The same record, written by a process of this host that no longer exists:
    config = json.loads((rec.path / "config.json").read_text())
    config["environment"]["pid"] = _dead_pid()
    (rec.path / "config.json").write_text(json.dumps(config))
    assert read_run(rec.path).status == "unknown"  # type: ignore[union-attr]
    # ... or by another host, which cannot be checked:
    config["environment"]["hostname"] = "some-other-host.invalid"
    (rec.path / "config.json").write_text(json.dumps(config))
    assert read_run(rec.path).status == "running"  # type: ignore[union-attr]
    rec.finish({})


def test_a_resumed_run_is_running_while_the_process_that_resumed_it_lives(
        tmp_path: Path) -> None:
    """After `--resume` the writer is the resuming process, named in its "resumed" event: the
    run reads as running while it lives (and another `--resume` is refused), not "unknown"
    because the process that started it is gone."""
    from seqbench.recipes import resume_run
    from seqbench.runs.read import current_writer

    rec = _create(tmp_path, config={"resolved": {"model": "sasrec"}})
    config = json.loads((rec.path / "config.json").read_text())
    config["environment"]["pid"] = _dead_pid()  # the starting process was killed
    (rec.path / "config.json").write_text(json.dumps(config))
    assert read_run(rec.path).status == "unknown"  # type: ignore[union-attr]

    rec.event("resumed", from_epoch=1, **current_writer())  # this process goes on with it
    rec.event("epoch", epoch=2)
    assert read_run(rec.path).status == "running"  # type: ignore[union-attr]
    with pytest.raises(SeqbenchError, match=f"still being written \\(process {os.getpid()} "):
        resume_run(rec.path)

    rec.event("resumed", from_epoch=2, pid=_dead_pid(), hostname=current_writer()["hostname"])
    assert read_run(rec.path).status == "unknown"  # type: ignore[union-attr]
    rec.finish({})


def test_list_runs_orders_by_start_and_skips_non_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = _create(runs, "zzz")
    first.finish({})
    time.sleep(0.01)
    second = _create(runs, "aaa")  # sorts first by name when in the same second
    second.finish({})
    (runs / "not-a-run").mkdir()
    (runs / ".hidden").mkdir()
    (runs / "notes.txt").write_text("hello")

    assert [r.run_id for r in list_runs(runs)] == [first.run_id, second.run_id]
    assert list_runs(tmp_path / "missing") == []
    assert read_run(runs / "not-a-run") is None
    with pytest.raises(SeqbenchError, match="not a directory"):
        list_runs(runs / "notes.txt")


# --- run ids: unique and contained --------------------------------------------------------


def test_concurrent_threads_get_distinct_ids_and_intact_files(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    barrier = threading.Barrier(16)
    recorders: list[RunRecorder] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            with RunRecorder.create(runs, name_parts=["same", "name"], config={"i": i}) as rec:
                recorders.append(rec)
                for epoch in range(1, 4):
                    rec.event("epoch", epoch=epoch, i=i)
                rec.finish({"i": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert len({rec.run_id for rec in recorders}) == 16
    views = list_runs(runs)
    assert len(views) == 16
    for view in views:
        i = view.config["i"]
        assert view.status == "finished" and view.summary["i"] == i  # type: ignore[index]
        assert [e.get("i") for e in view.events_of("epoch")] == [i, i, i]


def test_id_collision_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suffixes = iter(["abcd", "abcd", "abcd", "ef01"])
    monkeypatch.setattr(record.secrets, "token_hex", lambda n: next(suffixes))
    monkeypatch.setattr(record, "time", types.SimpleNamespace(time=lambda: 1_700_000_000.0))
    first = _create(tmp_path, "same")
    second = _create(tmp_path, "same")
    assert first.run_id == "20231114-221320-same-abcd"
    assert second.run_id == "20231114-221320-same-ef01"
    first.finish({})
    second.finish({})


CHILD = textwrap.dedent("""
    import random, sys, time, types
    from pathlib import Path
    from seqbench.runs import record

    runs, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    # Same second and only 8 possible suffixes: collisions between the processes are likely.
    record.time = types.SimpleNamespace(time=lambda: 1_700_000_000.0)
    record.secrets = types.SimpleNamespace(token_hex=lambda n: f"{random.randrange(8):04x}")
    ready.touch()
    while not go.exists():
        time.sleep(0.001)
    for i in range(3):
        with record.RunRecorder.create(runs, name_parts=["same"], config={"i": i}) as rec:
            rec.event("epoch", epoch=1, owner=rec.path.name)
            rec.finish({"i": i})
            print(rec.run_id)
""")


def test_concurrent_processes_get_distinct_ids(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = []
    for k in range(2):
        ready = tmp_path / f"ready-{k}"
        children.append((ready, subprocess.Popen(
            [sys.executable, "-c", CHILD, str(runs), str(ready), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)))
    deadline = time.monotonic() + 60
    while not all(ready.exists() for ready, _ in children):
        assert time.monotonic() < deadline, "children did not start"
        assert all(proc.poll() is None for _, proc in children), children[0][1].communicate()
        time.sleep(0.01)
    go.touch()
    ids = []
    for _, proc in children:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        ids += out.split()

    assert len(ids) == 6 and len(set(ids)) == 6
    views = list_runs(runs)
    assert sorted(v.run_id for v in views) == sorted(ids)
    for view in views:
        assert view.status == "finished"
        assert [e["event"] for e in view.events] == ["start", "epoch", "end"]
        assert view.events[1]["owner"] == view.run_id  # each file written by its own run


@pytest.mark.parametrize("parts", [["../evil"], ["a/b", "c"], ["with space", "UPPER"],
                                   ["..", "."], ["/abs/path"], ["", "x\\y\x00z"]])
def test_run_ids_stay_inside_the_runs_dir(tmp_path: Path, parts: list[str]) -> None:
    runs = tmp_path / "runs"
    rec = RunRecorder.create(runs, name_parts=parts, config={})
    rec.finish({})
    assert rec.path.parent == runs
    assert RUN_ID.match(rec.run_id), rec.run_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert [p.name for p in runs.iterdir()] == [rec.run_id]


def test_sanitize_name() -> None:
    assert sanitize_name("../evil") == "_evil"
    assert sanitize_name("a/b") == "a_b"
    assert sanitize_name("ML 1M") == "ml_1m"
    assert sanitize_name("...") == ""
    assert sanitize_name("epoch-3", "a-z0-9._-") == "epoch-3"


# --- the runs directory -------------------------------------------------------------------


def test_runs_dir_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    file = tmp_path / "runs"
    file.write_text("not a directory")
    with pytest.raises(SeqbenchError, match="not a directory"):
        check_runs_dir(file)
    with pytest.raises(SeqbenchError):
        _create(file)
    assert file.read_text() == "not a directory"


def test_runs_dir_under_a_file_is_rejected(tmp_path: Path) -> None:
    """Cannot be created even by root: a path under a regular file."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(SeqbenchError, match="cannot be created or written") as info:
        check_runs_dir(tmp_path / "file" / "runs")
    assert "\n" not in str(info.value)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root may write to a 0o500 directory; covered by the file case")
def test_read_only_runs_dir_is_rejected(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o500)
    try:
        with pytest.raises(SeqbenchError, match="cannot be created or written"):
            check_runs_dir(runs)
    finally:
        runs.chmod(0o700)


def test_check_runs_dir_creates_and_leaves_nothing(tmp_path: Path) -> None:
    runs = tmp_path / "a" / "b" / "runs"
    check_runs_dir(runs)
    assert runs.is_dir() and list(runs.iterdir()) == []


# --- checkpoints --------------------------------------------------------------------------


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    rec = _create(tmp_path)
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3, "kind": "sasrec"}
    path = rec.save_checkpoint("epoch-3", state)
    assert path == rec.path / "epoch-3.pt"
    loaded = load_checkpoint(path)
    assert loaded.keys() == state.keys()
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert loaded["epoch"] == 3
    assert rec.save_checkpoint("../../escape", state).parent == rec.path
    rec.finish({})


@pytest.mark.parametrize("error", [RuntimeError("disk gone"), OSError(28, "No space left")])
def test_checkpoint_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   error: Exception) -> None:
    rec = _create(tmp_path)
    good = {"model": {"w": torch.ones(4)}, "epoch": 1}
    path = rec.save_checkpoint("best", good)
    before = path.read_bytes()

    def half_then_fail(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        f.write(before[: len(before) // 2])
        raise error

    monkeypatch.setattr(checkpoint.torch, "save", half_then_fail)
    expected = SeqbenchError if isinstance(error, OSError) else type(error)
    with pytest.raises(expected):
        rec.save_checkpoint("best", {"model": {"w": torch.zeros(4)}, "epoch": 2})
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert not [p.name for p in rec.path.iterdir() if p.name.startswith(".")]
    rec.finish({})


def test_load_checkpoint_rejects_what_is_not_a_seqbench_checkpoint(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pt"
    text = tmp_path / "text.pt"
    text.write_text("definitely not a torch file\n")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, foreign)
    pickled = tmp_path / "pickled.pt"
    torch.save({"seqbench_checkpoint": 1, "obj": types.SimpleNamespace(a=1)}, pickled)
    truncated = tmp_path / "truncated.pt"
    torch.save({"seqbench_checkpoint": 1, "w": torch.ones(1000)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])

    for path, message in [(missing, "no such checkpoint"), (text, "not a readable"),
                          (foreign, "not a seqbench checkpoint"), (pickled, "not a readable"),
                          (truncated, "not a readable"), (tmp_path, "not a checkpoint file")]:
        with pytest.raises(SeqbenchError, match=message) as info:
            load_checkpoint(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


# --- JSON values --------------------------------------------------------------------------


def test_odd_values_serialise_as_strict_json(tmp_path: Path) -> None:
    values = {
        "nan": math.nan, "inf": math.inf, "ninf": -math.inf, "np_nan": np.float32("nan"),
        "np_float": np.float32(1.5), "np_int": np.int64(3), "np_bool": np.bool_(True),
        "np_array": np.array([1, 2]), "tensor": torch.tensor(2.5), "tensor_nan": torch.tensor(
            math.nan), "tensor_vec": torch.tensor([1, 2]), "path": Path("a") / "b",
        "tuple": (1, math.inf), "int_keys": {1: "a"}, "nested": {"x": [math.nan, {"y": np.int32(
            7)}]}, "other": object.__new__(type("Thing", (), {"__str__": lambda s: "thing"})),
    }
    rec = _create(tmp_path, config={"weight": math.nan, "dir": Path("/tmp/x")})
    rec.event("epoch", **values)
    rec.finish({"metric": np.float64("inf"), "values": values})

    event = _strict_lines(rec.path)[1]
    assert {k: event[k] for k in values} == {
        "nan": None, "inf": None, "ninf": None, "np_nan": None, "np_float": 1.5, "np_int": 3,
        "np_bool": True, "np_array": [1, 2], "tensor": 2.5, "tensor_nan": None,
        "tensor_vec": [1, 2], "path": str(Path("a") / "b"), "tuple": [1, None],
        "int_keys": {"1": "a"}, "nested": {"x": [None, {"y": 7}]}, "other": "thing",
    }
    config = json.loads((rec.path / "config.json").read_text(), parse_constant=_no_constants)
    assert config["weight"] is None and config["dir"] == "/tmp/x"
    summary = json.loads((rec.path / "summary.json").read_text(), parse_constant=_no_constants)
    assert summary["metric"] is None and summary["values"]["np_int"] == 3


def _no_constants(name: str) -> None:
    raise AssertionError(f"non-standard JSON constant {name}")


def test_to_jsonable_keeps_plain_values() -> None:
    plain = {"a": [1, 2.5, "x", True, None], "b": {"c": False}}
    assert to_jsonable(plain) == plain
    assert type(to_jsonable(np.float64(0.25))) is float


def test_runs_name_the_git_commit_they_ran_from(tmp_path: Path) -> None:
    from seqbench.runs.environment import source_revision

    package = tmp_path / "checkout" / "seqbench"
    package.mkdir(parents=True)
    assert source_revision(package) is None  # not a git checkout (an installed wheel)
    (package / "code.py").write_text("x = 1\n")
    git = ["git", "-C", str(package.parent), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
    assert source_revision(package) == {"git_commit": head, "modified": False}
    (package / "code.py").write_text("x = 2\n")
    assert source_revision(package) == {"git_commit": head, "modified": True}
    rec = _create(tmp_path / "runs")
    recorded = json.loads((rec.path / "config.json").read_text())["environment"]["source"]
    assert recorded == source_revision()  # this checkout's, recorded with every run
    rec.finish({})
