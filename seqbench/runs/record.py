"""Write one run directory: config.json, events.jsonl, summary.json and checkpoints.

Every file is safe to read at any moment, from another process or after a crash:
config.json, summary.json and checkpoints appear whole or not at all (temp file + rename),
and events.jsonl only grows, one JSON object per line, each line handed to the kernel as
soon as it is recorded. Run ids are made of a timestamp, sanitised name parts and random
hex, and claimed with an exclusive mkdir, so concurrent runs never share a directory and
no name part can point outside the runs directory. The fields of each file are those of
`seqbench.runs.schema` (docs/runs.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from seqbench.errors import SeqbenchError
from seqbench.fsutil import atomic_write_json
from seqbench.runs.checkpoint import SUFFIX, save_checkpoint
from seqbench.runs.environment import run_environment
from seqbench.runs.jsonable import to_jsonable
from seqbench.runs.read import CONFIG_FILE, EVENTS_FILE, SUMMARY_FILE
from seqbench.runs.schema import (
    END,
    FAILED,
    INTERRUPTED,
    START,
    ModelKind,
    RunSummary,
    resume_command,
)

log = logging.getLogger(__name__)

_RUN_ID_CHARS = "a-z0-9._"
_CHECKPOINT_CHARS = "a-z0-9._-"
_PART_MAX_CHARS = 40
_CREATE_ATTEMPTS = 100
_TRACEBACK_LINES = 12
_TRACEBACK_CHARS = 4000


class RunRecorder:
    """Writes one run directory.

    Use as `with RunRecorder.create(...) as rec:` and call `rec.finish(summary)` at the end.
    An exception escaping the block is recorded (`fail`) and re-raised; leaving the block
    without `finish` is a bug, recorded as a failure and raised as RuntimeError.
    """

    def __init__(self, path: Path, run_id: str, started: float) -> None:
        """Use `create`; this only holds the state of a directory `create` has claimed."""
        self.path = path
        self.run_id = run_id
        self.started = started
        self.status: str | None = None  # set once the run is closed: finished/failed/...
        self._events: Any = None  # raw (unbuffered) binary file, opened by `_begin`
        self._lock = threading.Lock()

    @classmethod
    def create(cls, runs_dir: Path, *, name_parts: Sequence[str],
               config: dict[str, Any]) -> RunRecorder:
        """Claim a fresh `runs_dir/<run-id>/`, write config.json and the "start" event."""
        runs_dir = Path(runs_dir)
        check_runs_dir(runs_dir)
        started = time.time()
        path, run_id = _claim_run_dir(runs_dir, started, name_parts)
        recorder = cls(path, run_id, started)
        try:
            recorder._begin(config)
        except BaseException:
            # A directory without config.json is not a run to readers; do not leave one.
            recorder._close_events()
            shutil.rmtree(path, ignore_errors=True)
            raise
        log.info("recording run %s in %s", run_id, path)
        return recorder

    @classmethod
    def reopen(cls, path: Path) -> RunRecorder:
        """Continue writing an existing run (`--resume`): appends to its events, and removes a
        summary.json left by the interruption so readers see it running again."""
        path = Path(path)
        config = path / CONFIG_FILE
        if not config.is_file():
            raise SeqbenchError(f"{path}: not a seqbench run directory (no {CONFIG_FILE})")
        recorder = cls(path, path.name, time.time())
        try:
            (path / SUMMARY_FILE).unlink(missing_ok=True)
            recorder._events = open(path / EVENTS_FILE, "ab", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise SeqbenchError(f"cannot write run {path}: {exc.strerror or exc}") from exc
        log.info("resuming run %s in %s", recorder.run_id, path)
        return recorder

    def amend_config(self, table: str, key: str, value: Any, *,
                     old_keys: Sequence[str] = ()) -> Any:
        """Set one recorded setting of a resumed run (e.g. a longer time limit), so config.json
        keeps describing how the run was actually trained; returns the value it had (the file
        is rewritten only if that differs). `old_keys`: the setting's spellings in records of
        earlier releases, replaced by `key` when the file is rewritten."""
        path = self.path / CONFIG_FILE
        try:
            config = json.loads(path.read_text())
            section = config.setdefault(table, {})
            previous = next((section[k] for k in (key, *old_keys) if k in section), None)
            value = to_jsonable(value)
            if value != previous:
                for old in old_keys:
                    section.pop(old, None)
                section[key] = value
                atomic_write_json(path, config)
            return previous
        except (OSError, ValueError) as exc:
            raise SeqbenchError(f"cannot update {path}: {getattr(exc, 'strerror', None) or exc}"
                                ) from exc

    def _begin(self, config: dict[str, Any]) -> None:
        environment = run_environment(self.started, self.run_id)
        try:
            atomic_write_json(self.path / CONFIG_FILE,
                              to_jsonable({**config, "environment": environment}))
            self._events = open(self.path / EVENTS_FILE, "ab", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise SeqbenchError(f"cannot write run {self.path}: {exc.strerror or exc}") from exc
        self.event(START, run_id=self.run_id, pid=os.getpid())

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            if self.status is None:
                self._fail_quietly(exc)
            elif self.status == "finished":  # the record stands; the error still propagates
                log.warning("run %s raised after it finished: %s", self.run_id, exc)
            return  # the exception propagates
        if self.status is None:
            bug = RuntimeError(f"run {self.run_id} ended without a summary: "
                               "finish() was not called")
            self.fail(bug)
            raise bug

    @property
    def closed(self) -> bool:
        return self.status is not None

    def event(self, event: str, **fields: Any) -> None:
        """Append one event line and hand it to the kernel at once (a reader sees it now)."""
        record = to_jsonable({"event": event, "time": time.time(), **fields})
        line = (json.dumps(record, allow_nan=False, ensure_ascii=False) + "\n").encode()
        with self._lock:
            if self._events is None:
                raise RuntimeError(f"run {self.run_id} is closed; cannot record {event!r}")
            try:
                _write_all(self._events, line)
            except OSError as exc:
                raise SeqbenchError(f"cannot append to {self.path / EVENTS_FILE}: "
                                    f"{exc.strerror or exc}") from exc

    def save_checkpoint(self, name: str, state: dict[str, Any], *, quiet: bool = False) -> Path:
        """Save `state` as `<run>/<name>.pt`, replacing an older one only once fully written.
        `quiet` skips the "checkpoint" event (for `last.pt`, rewritten every epoch)."""
        safe = sanitize_name(name, _CHECKPOINT_CHARS)
        if not safe:
            raise ValueError(f"checkpoint name {name!r} has no usable characters")
        path = self.path / f"{safe}{SUFFIX}"
        save_checkpoint(state, path)
        if self._events is not None and not quiet:
            epoch = {"epoch": state["epoch"]} if "epoch" in state else {}
            self.event("checkpoint", name=safe, file=path.name, **epoch)
        return path

    def finish(self, summary: RunSummary | Mapping[str, Any]) -> None:
        """Record the end, then summary.json; after this the run is closed."""
        self._require_open("finish")
        fields = summary.to_json() if isinstance(summary, RunSummary) else dict(summary)
        self.event(END, status="finished", seconds=time.time() - self.started)
        self._write_summary({"status": "finished", "run_id": self.run_id, **fields})
        self._close("finished")

    def fail(self, error: BaseException) -> None:
        """Record why the run stopped: "interrupted" for Ctrl-C/SIGTERM, else "failed"."""
        self._require_open("fail")
        status = INTERRUPTED if isinstance(error, (KeyboardInterrupt, SystemExit)) else FAILED
        info = error_info(error)
        try:
            try:
                self.event(status, error=info, seconds=time.time() - self.started)
            except SeqbenchError as exc:  # e.g. disk full; summary.json may still fit
                log.warning("%s", exc)
            self._write_summary({"status": status, "run_id": self.run_id, "error": info})
        finally:
            self._close(status)
        if status == INTERRUPTED and (self.path / "last.pt").exists():
            log.warning("run %s interrupted; continue it with: %s", self.run_id,
                        resume_command(_recorded_kind(self.path), self.path))

    def _fail_quietly(self, error: BaseException) -> None:
        """`fail` from an error path: a problem recording it must not hide the real error."""
        try:
            self.fail(error)
        except Exception as exc:
            log.warning("could not record the failure of run %s: %s", self.run_id, exc)

    def _write_summary(self, summary: dict[str, Any]) -> None:
        try:
            atomic_write_json(self.path / SUMMARY_FILE, to_jsonable(summary))
        except OSError as exc:
            raise SeqbenchError(f"cannot write {self.path / SUMMARY_FILE}: "
                                f"{exc.strerror or exc}") from exc

    def _require_open(self, action: str) -> None:
        if self.status is not None:
            raise RuntimeError(f"run {self.run_id} is already {self.status}; cannot {action}")

    def _close(self, status: str) -> None:
        self.status = status
        self._close_events()

    def _close_events(self) -> None:
        with self._lock:
            if self._events is not None:
                with contextlib.suppress(OSError):
                    self._events.close()
                self._events = None


def _recorded_kind(path: Path) -> ModelKind | None:
    """The model kind a run's config.json names (None when it cannot be read)."""
    try:
        return ModelKind.of(json.loads((path / CONFIG_FILE).read_text())["resolved"]["model"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_runs_dir(runs_dir: Path) -> None:
    """Fail early, with one line, when runs cannot be recorded in `runs_dir`.

    Creates it if needed and writes and removes a probe file, so a directory that is a file,
    lies under a file, or is not writable is reported before any training time is spent.
    """
    runs_dir = Path(runs_dir)
    if runs_dir.exists() and not runs_dir.is_dir():
        raise SeqbenchError(f"runs directory {runs_dir} exists but is not a directory")
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=runs_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SeqbenchError(f"runs directory {runs_dir} cannot be created or written: "
                            f"{exc.strerror or exc}") from exc


def sanitize_name(text: str, allowed: str = _RUN_ID_CHARS) -> str:
    """Lower-case `text`, replace characters outside `allowed` with `_`, drop leading dots.

    The result has no `/` and cannot be `.` or `..`, so it stays inside its directory.
    """
    cleaned = re.sub(f"[^{allowed}]", "_", str(text).lower()).lstrip(".")
    return cleaned[:_PART_MAX_CHARS]


def make_run_id(started: float, name_parts: Sequence[str]) -> str:
    """`<UTC %Y%m%d-%H%M%S>-<parts>-<4 hex>`; a new random suffix on every call."""
    stamp = dt.datetime.fromtimestamp(started, dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    parts = [part for part in (sanitize_name(p) for p in name_parts) if part]
    return "-".join([stamp, *parts, secrets.token_hex(2)])


def error_info(error: BaseException) -> dict[str, str]:
    """Type, message and the last lines of the traceback: enough to recognise a failure."""
    message = str(error) or {KeyboardInterrupt: "interrupted"}.get(type(error), "")
    lines = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    tail = "\n".join(lines.rstrip("\n").splitlines()[-_TRACEBACK_LINES:])
    return {"type": type(error).__name__, "message": message,
            "traceback": tail[-_TRACEBACK_CHARS:]}


def _claim_run_dir(runs_dir: Path, started: float,
                   name_parts: Sequence[str]) -> tuple[Path, str]:
    """mkdir is the lock: whoever creates the directory owns the id; others draw again."""
    for _ in range(_CREATE_ATTEMPTS):
        run_id = make_run_id(started, name_parts)
        path = runs_dir / run_id
        if path.parent != runs_dir:  # cannot happen with sanitised parts; never write outside
            raise ValueError(f"run id {run_id!r} escapes {runs_dir}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise SeqbenchError(f"cannot create a run directory in {runs_dir}: "
                                f"{exc.strerror or exc}") from exc
        return path, run_id
    raise SeqbenchError(f"could not find a free run id in {runs_dir} "
                        f"after {_CREATE_ATTEMPTS} attempts")


def _write_all(file: Any, data: bytes) -> None:
    """An unbuffered write may be partial; finish it so no line is cut short by us."""
    view = memoryview(data)
    while view:
        written = file.write(view)
        view = view[written:]
