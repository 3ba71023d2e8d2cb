"""Write one run directory: config.json, events.jsonl, summary.json and checkpoints.

Every file is safe to read at any moment, from another process or after a crash:
config.json, summary.json and checkpoints appear whole or not at all (temp file + rename),
and events.jsonl only grows, one JSON object per line, each line handed to the kernel as
soon as it is recorded. Run ids are made of a timestamp, sanitised name parts and random
hex, and claimed with an exclusive mkdir, so concurrent runs never share a directory and
no name part can point outside the runs directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import json
import logging
import math
import os
import platform
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any

import torch

from seqbench import __version__
from seqbench.engine.telemetry import usable_cpus
from seqbench.errors import SeqbenchError
from seqbench.fsutil import atomic_file, atomic_write_json, interrupts_deferred
from seqbench.runs.read import CONFIG_FILE, EVENTS_FILE, SUMMARY_FILE, current_writer

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIX = ".pt"
CHECKPOINT_MARKER = "seqbench_checkpoint"
CHECKPOINT_FORMAT = 1

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

    def amend_config(self, table: str, key: str, value: Any) -> Any:
        """Set one recorded setting of a resumed run (e.g. a longer time limit), so config.json
        keeps describing how the run was actually trained; returns the value it had (the file
        is rewritten only if that differs)."""
        path = self.path / CONFIG_FILE
        try:
            config = json.loads(path.read_text())
            previous = config.setdefault(table, {}).get(key)
            value = to_jsonable(value)
            if value != previous:
                config[table][key] = value
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
        self.event("start", run_id=self.run_id, pid=os.getpid())

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
        path = self.path / f"{safe}{CHECKPOINT_SUFFIX}"
        _atomic_torch_save({**state, CHECKPOINT_MARKER: CHECKPOINT_FORMAT}, path)
        if self._events is not None and not quiet:
            epoch = {"epoch": state["epoch"]} if "epoch" in state else {}
            self.event("checkpoint", name=safe, file=path.name, **epoch)
        return path

    def finish(self, summary: dict[str, Any]) -> None:
        """Record the end, then summary.json; after this the run is closed."""
        self._require_open("finish")
        self.event("end", status="finished", seconds=time.time() - self.started)
        self._write_summary({"status": "finished", "run_id": self.run_id, **summary})
        self._close("finished")

    def fail(self, error: BaseException) -> None:
        """Record why the run stopped: "interrupted" for Ctrl-C/SIGTERM, else "failed"."""
        self._require_open("fail")
        status = "interrupted" if isinstance(error, (KeyboardInterrupt, SystemExit)) else "failed"
        info = error_info(error)
        try:
            try:
                self.event(status, error=info, seconds=time.time() - self.started)
            except SeqbenchError as exc:  # e.g. disk full; summary.json may still fit
                log.warning("%s", exc)
            self._write_summary({"status": status, "run_id": self.run_id, "error": info})
        finally:
            self._close(status)
        if status == "interrupted" and (self.path / "last.pt").exists():
            log.warning("run %s interrupted; continue it with: seqbench %s --resume %s",
                        self.run_id, _resume_command(self.path), self.path)

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


def _resume_command(path: Path) -> str:
    """The command that resumes the run in `path` (from the model kind it recorded)."""
    try:
        kind = json.loads((path / CONFIG_FILE).read_text())["resolved"]["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return "bench"
    return {"s3rec": "finetune", "s3rec-pretrain": "pretrain"}.get(kind, "bench")


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


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by `save_checkpoint`, loaded without running any pickled code."""
    path = Path(path)
    if not path.exists():
        raise SeqbenchError(f"{path}: no such checkpoint")
    if not path.is_file():
        raise SeqbenchError(f"{path}: not a checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types here (UnpicklingError, RuntimeError, ...)
        raise SeqbenchError(f"{path}: not a readable torch checkpoint ({_one_line(exc)})") from exc
    if not isinstance(state, dict) or CHECKPOINT_MARKER not in state:
        raise SeqbenchError(f"{path}: a torch file, but not a seqbench checkpoint")
    if state[CHECKPOINT_MARKER] != CHECKPOINT_FORMAT:
        raise SeqbenchError(f"{path}: seqbench checkpoint format {state[CHECKPOINT_MARKER]!r} "
                            f"is not supported by this version (expects {CHECKPOINT_FORMAT})")
    return {key: value for key, value in state.items() if key != CHECKPOINT_MARKER}


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


def run_environment(started: float, run_id: str) -> dict[str, Any]:
    """Where and with what a run ran: enough to explain a number that differs elsewhere."""
    return {
        "run_id": run_id,
        "seqbench": __version__,
        "source": source_revision(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable_cpus(),
        **current_writer(),  # the host and pid a reader checks to see if the run is alive
        "cuda_devices": _cuda_devices(),
        "started_at": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(),
        "started_unix": started,
    }


def source_revision(package_dir: Path | None = None) -> dict[str, Any] | None:
    """The git commit seqbench runs from, and whether its tracked files differ from it; None
    when it is not a git checkout (an installed wheel: the version says it). The version alone
    cannot tell two development states apart, and a figure should name the code that made it."""
    root = (package_dir or Path(__file__).resolve().parents[1]).parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=5).stdout.strip()
        changes = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                  "--untracked-files=no"], check=True, capture_output=True,
                                 text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"git_commit": commit, "modified": bool(changes.strip())}


def error_info(error: BaseException) -> dict[str, str]:
    """Type, message and the last lines of the traceback: enough to recognise a failure."""
    message = str(error) or {KeyboardInterrupt: "interrupted"}.get(type(error), "")
    lines = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    tail = "\n".join(lines.rstrip("\n").splitlines()[-_TRACEBACK_LINES:])
    return {"type": type(error).__name__, "message": message,
            "traceback": tail[-_TRACEBACK_CHARS:]}


def to_jsonable(value: Any) -> Any:
    """`value` as strict JSON data: NaN/inf become null, numpy/torch values plain numbers.

    Anything unknown is recorded as its `str`, so an odd value in an event never stops a
    training run; the record stays valid JSON for every reader.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {_json_key(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if callable(getattr(value, "tolist", None)):  # numpy scalars and arrays
        return to_jsonable(value.tolist())
    log.debug("recording %s value as its string", type(value).__name__)
    return str(value)


def _json_key(key: Any) -> str:
    return key if isinstance(key, str) else str(to_jsonable(key))


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


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save streamed into `fsutil.atomic_file` (a checkpoint may not fit in memory twice).
    A failed write (disk full, quota) leaves the previous file and is reported as such."""
    trap: _WriteErrorTrap | None = None
    try:
        with interrupts_deferred(), atomic_file(path) as f:  # Ctrl-C waits for the save
            trap = _WriteErrorTrap(f)
            torch.save(obj, trap)
    except OSError as exc:
        raise SeqbenchError(f"cannot save checkpoint {path}: {exc.strerror or exc}") from exc
    except RuntimeError as exc:
        if trap is None or trap.error is None:
            raise
        error = trap.error
        raise SeqbenchError(f"cannot save checkpoint {path}: {error.strerror or error}") from exc


class _WriteErrorTrap:
    """A file proxy that keeps the OSError of a failed write: torch.save reports one only as
    an opaque RuntimeError ("unexpected pos ..."), which would hide e.g. a full disk."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.file.flush()


def _write_all(file: Any, data: bytes) -> None:
    """An unbuffered write may be partial; finish it so no line is cut short by us."""
    view = memoryview(data)
    while view:
        written = file.write(view)
        view = view[written:]


def _cuda_devices() -> list[str]:
    """Names of the visible GPUs; a broken driver is recorded, not fatal."""
    try:
        if not torch.cuda.is_available():
            return []
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as exc:
        return [f"unavailable: {_one_line(exc)}"]


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= limit else first[:limit] + "..."
