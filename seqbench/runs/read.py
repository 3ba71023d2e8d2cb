"""Read run directories back, from their files alone, for `compare` and `dash`.

Nothing here needs the process that wrote a run: runs copied from another machine, runs that
crashed and runs still training all read the same way. A run that is still being written
(or was killed mid-write) can end its events.jsonl in half a line; that line is not an error,
it is simply not there yet.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench.errors import SeqbenchError
from seqbench.runs.schema import (
    EPOCH,
    RESUMED,
    STATUSES,
    TERMINAL_EVENTS,
    EpochRecord,
    ResolvedView,
    SummaryView,
)

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"


@dataclass
class RunView:
    """One run as its files describe it."""

    path: Path
    run_id: str
    config: dict[str, Any]
    events: list[dict[str, Any]]
    summary: dict[str, Any] | None
    status: str  # one of STATUSES

    @property
    def environment(self) -> dict[str, Any]:
        env = self.config.get("environment")
        return env if isinstance(env, dict) else {}

    @property
    def started(self) -> float:
        """Start time (unix seconds): from config.json, else the first event, else the mtime."""
        started = self.environment.get("started_unix")
        if isinstance(started, (int, float)) and not isinstance(started, bool):
            return float(started)
        for event in self.events[:1]:
            if isinstance(event.get("time"), (int, float)):
                return float(event["time"])
        try:
            return (self.path / CONFIG_FILE).stat().st_mtime
        except OSError:
            return 0.0

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        """The events of one kind, e.g. every "epoch", in the order they were written."""
        return [event for event in self.events if event.get("event") == kind]

    def epochs(self) -> list[EpochRecord]:
        """The epoch events, read through the schema (unreadable ones skipped)."""
        return [record for event in self.events_of(EPOCH)
                if (record := EpochRecord.from_event(event)) is not None]

    @property
    def resolved(self) -> ResolvedView:
        """What config.json says the run is (model kind, loss backend, variant, ...)."""
        return ResolvedView.from_config(self.config)

    @property
    def summary_view(self) -> SummaryView:
        return SummaryView.from_json(self.summary)


def read_run(path: Path) -> RunView | None:
    """The run in directory `path`, or None when it is not a run (no readable config.json)."""
    path = Path(path)
    config = _read_json(path / CONFIG_FILE)
    if not isinstance(config, dict):
        return None
    events, _ = read_events_since(path, 0)
    summary = _read_json(path / SUMMARY_FILE)
    if summary is not None and not isinstance(summary, dict):
        log.warning("%s: not a JSON object; ignored", path / SUMMARY_FILE)
        summary = None
    status = run_status(config, events, summary)
    return RunView(path=path, run_id=path.name, config=config, events=events, summary=summary,
                   status=status)


def read_runs(paths: list[Path]) -> list[RunView]:
    """The runs in directories given by name; one that is no run is an error naming it."""
    views = []
    for path in paths:
        view = read_run(path) if Path(path).is_dir() else None
        if view is None:
            raise SeqbenchError(f"{path} is not a run directory (no readable config.json)")
        views.append(view)
    return views


def read_events_since(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    """Events in complete lines after byte `offset`, and the offset to continue from.

    `path` is a run directory or its events.jsonl. A last line without its newline is left
    for the next call. If the file is now shorter than `offset` it was replaced, and is read
    again from the start.
    """
    path = Path(path)
    file = path / EVENTS_FILE if path.is_dir() else path
    try:
        with open(file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if offset > size:
                log.warning("%s: shorter than before (%d < %d bytes); reading it again",
                            file, size, offset)
                offset = 0
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1  # 0 when there is no complete line yet
    return _parse_lines(file, data[:end], offset), offset + end


def list_runs(runs_dir: Path) -> list[RunView]:
    """Every run directly under `runs_dir`, oldest first; a missing directory has none."""
    runs_dir = Path(runs_dir)
    try:
        entries = sorted(runs_dir.iterdir())
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        raise SeqbenchError(f"{runs_dir} is not a directory of runs") from None
    runs = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            run = read_run(entry)
        except OSError as exc:
            log.warning("%s: cannot be read (%s); skipped", entry, exc.strerror or exc)
            continue
        if run is not None:
            runs.append(run)
    runs.sort(key=lambda run: (run.started, run.run_id))
    return runs


def _parse_lines(file: Path, data: bytes, offset: int) -> list[dict[str, Any]]:
    """JSON objects of complete lines; a malformed one is skipped with a warning naming it."""
    events = []
    position = offset
    for raw in data.split(b"\n")[:-1]:
        start, position = position, position + len(raw) + 1
        if not raw.strip():
            continue
        try:
            event = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            log.warning("%s: malformed line at byte %d skipped (%s)", file, start, exc)
            continue
        if not isinstance(event, dict):
            log.warning("%s: line at byte %d is not a JSON object; skipped", file, start)
            continue
        events.append(event)
    return events


def _read_json(path: Path) -> Any:
    """The JSON in `path`; None when missing or unreadable (logged: the run is still listed)."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("%s: cannot be read (%s)", path, exc.strerror or exc)
        return None
    try:
        return json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("%s: not valid JSON (%s)", path, exc)
        return None


def run_status(config: dict[str, Any], events: list[dict[str, Any]],
            summary: dict[str, Any] | None) -> str:
    """summary.json decides; without it the last event does (its writer may still be going)."""
    if summary is not None:
        status = summary.get("status")
        return status if status in STATUSES else "unknown"
    last = events[-1].get("event") if events else None
    if last in TERMINAL_EVENTS:
        return TERMINAL_EVENTS[last]
    return "unknown" if _writer_is_gone(run_writer(config, events)) else "running"


def current_writer() -> dict[str, Any]:
    """This process as a run's writer: what a "resumed" event records."""
    return {"pid": os.getpid(), "hostname": socket.gethostname()}


def run_writer(config: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """Host and pid of the process that wrote the run last: the one that resumed it last, else
    the one that started it (config.json)."""
    for event in reversed(events):
        if event.get("event") == RESUMED and "pid" in event:
            return {"pid": event.get("pid"), "hostname": event.get("hostname")}
    env = config.get("environment")
    return env if isinstance(env, dict) else {}


def _writer_is_gone(writer: dict[str, Any]) -> bool:
    """True only when the run was written on this host by a process that no longer exists.

    A run killed without a chance to record its end (SIGKILL, power loss) would otherwise say
    "running" forever. Runs from other hosts cannot be checked and stay "running".
    """
    if writer.get("hostname") != socket.gethostname():
        return False
    pid = writer.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False
