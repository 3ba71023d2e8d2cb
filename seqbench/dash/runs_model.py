"""What the dashboard knows of each run, kept current by tailing files instead of re-reading them.

A runs directory can hold hundreds of runs, each with thousands of epochs, while a few of them
are still being written. `RunsWatcher.poll` therefore lists the directory at most once per
`relist_interval`, and between listings only looks at the runs that can still change (those
running) and the ones on screen: a `stat` each, then a read of just the bytes appended since
the last offset (`read_events_since`). A torn last line is left for a later poll.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from seqbench.runs.read import (
    CONFIG_FILE,
    EVENTS_FILE,
    SUMMARY_FILE,
    RunView,
    read_events_since,
    run_status,  # one rule for status, shared with compare
)
from seqbench.runs.schema import (
    EPOCH,
    FAILED,
    RESUMED,
    EpochRecord,
    ModelKind,
    ResolvedView,
    number,
)

log = logging.getLogger(__name__)

LIVE_STATUSES = ("running",)
_SUMMARY_RETRIES = 3  # listings to wait for summary.json after a run's last event


def _read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`; None when missing, unreadable or half-written."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.debug("%s: not readable yet (%s)", path, exc)
        return None
    return data if isinstance(data, dict) else None


@dataclass
class RunSeries:
    """Per-epoch values of one run, one list per curve, all aligned with `epochs`."""

    epochs: list[float] = field(default_factory=list)
    train_loss: list[float | None] = field(default_factory=list)
    hr10: list[float | None] = field(default_factory=list)
    ndcg10: list[float | None] = field(default_factory=list)
    peak_memory_bytes: list[float | None] = field(default_factory=list)
    epoch_seconds: list[float | None] = field(default_factory=list)
    sequences_per_second: list[float | None] = field(default_factory=list)


@dataclass
class TrackedRun:
    """One run directory, followed from a byte offset into its events.jsonl."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any] | None = None
    status: str = "running"
    offset: int = 0
    started: float = 0.0
    series: RunSeries = field(default_factory=RunSeries)
    last_epoch: dict[str, Any] | None = None
    last_event: dict[str, Any] | None = None
    last_resumed: dict[str, Any] | None = None  # names the process writing a resumed run
    protocol: str | None = None  # the first validation protocol, e.g. "full"
    memory_kind: str | None = None
    error: str | None = None
    first_time: float | None = None  # of the first event, when config.json has no start time
    version: int = 0  # bumped on every change, so views redraw only what changed
    summary_retries: int = 0

    @property
    def run_id(self) -> str:
        return self.path.name

    @functools.cached_property
    def resolved(self) -> ResolvedView:
        """What config.json says the run is (it does not change while the run is written)."""
        return ResolvedView.from_config(self.config)

    @property
    def dataset(self) -> str:
        return self.resolved.dataset or "?"

    @property
    def split(self) -> str:
        """"loo" or "temporal" (the split its metrics are on)."""
        return self.resolved.split

    @property
    def model(self) -> str:
        return self.resolved.model or "?"

    @property
    def backend(self) -> str:
        """The loss backend (e.g. "ce[torch]"); pretraining runs have none, but a rank."""
        resolved = self.resolved
        if resolved.loss_backend:
            return resolved.loss_backend
        if resolved.rank:
            return f"rank {resolved.rank}"
        return resolved.loss or "?"

    @property
    def seed(self) -> str:
        return "?" if self.resolved.seed is None else str(self.resolved.seed)

    @property
    def is_pretraining(self) -> bool:
        return self.resolved.kind is ModelKind.S3REC_PRETRAIN

    def label_parts(self) -> list[str]:
        """dataset · model · loss backend · seed, as separate parts for wrapping; a temporal
        split is named after the dataset (leave-one-out, the default, is not)."""
        split = [] if self.split == "loo" else [f"{self.split} split"]
        return [self.dataset, *split, self.model, self.backend, f"s{self.seed}"]

    def short_name(self) -> str:
        """What tells two runs apart in a legend: the backend and the seed."""
        return f"{self.backend} s{self.seed}"

    def start_text(self, tz: tzinfo | None = None) -> str:
        if not self.started:
            return "?"
        return datetime.fromtimestamp(self.started, tz).strftime("%m-%d %H:%M")

    def feed(self, events: Iterable[dict[str, Any]]) -> bool:
        """Take in newly read events; True when something the dashboard shows changed."""
        changed = False
        for event in events:
            kind = event.get("event")
            self.last_event = event
            if self.first_time is None:
                self.first_time = number(event.get("time"))
            changed = True
            if kind == EPOCH:
                self._add_epoch(event)
            elif kind == FAILED:
                self.error = str(event.get("error") or "failed")
            elif kind == RESUMED:  # goes on: its summary.json was removed, a new one comes
                self.last_resumed, self.summary = event, None
        if changed:
            self.refresh_status()
            self.version += 1
        return changed

    def _add_epoch(self, event: dict[str, Any]) -> None:
        record = EpochRecord.from_event(event)
        if record is None:
            return
        series = self.series
        metrics: dict[str, float] = {}
        if record.valid:
            protocol = self.protocol if self.protocol in record.valid else next(iter(record.valid))
            self.protocol = self.protocol or protocol
            metrics = record.valid[protocol]
        series.epochs.append(float(record.epoch))
        series.train_loss.append(record.train_loss)
        series.hr10.append(metrics.get("HR@10"))
        series.ndcg10.append(metrics.get("NDCG@10"))
        series.peak_memory_bytes.append(None if record.peak_memory_bytes is None
                                        else float(record.peak_memory_bytes))
        series.epoch_seconds.append(record.seconds)
        series.sequences_per_second.append(record.sequences_per_second)
        if record.memory_kind is not None:
            self.memory_kind = record.memory_kind
        self.last_epoch = event

    def refresh_status(self) -> bool:
        """Recompute the status (summary.json first, then the last event, then the writer)."""
        events = [e for e in (self.last_resumed, self.last_event) if e is not None]
        status = run_status(self.config, events, self.summary)
        if status == self.status:
            return False
        self.status = status
        return True

    def reset(self) -> None:
        """Forget the events read so far: the file was replaced and is read again."""
        self.offset = 0
        self.series = RunSeries()
        self.last_epoch = self.last_event = self.last_resumed = None
        self.protocol = self.memory_kind = self.error = None
        self.first_time = None
        self.version += 1


@dataclass
class PollResult:
    """What one poll found: runs that appeared or vanished, and runs whose data changed."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


class RunsWatcher:
    """The runs under one directory, kept current by incremental polls."""

    def __init__(self, runs_dir: Path, *, relist_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.runs_dir = Path(runs_dir)
        self.relist_interval = relist_interval
        self.clock = clock
        self.runs: dict[str, TrackedRun] = {}
        self._last_listing: float | None = None
        self.listings = 0  # directory listings so far (tests check there is no polling storm)
        self.reads = 0  # events.jsonl reads so far

    def ordered(self) -> list[TrackedRun]:
        """The runs oldest first, as `seqbench compare` lists them."""
        return sorted(self.runs.values(), key=lambda run: (run.started, run.run_id))

    def poll(self, watched: Iterable[str] = (), *, force: bool = False) -> PollResult:
        """List the directory if it is time (or `force`), then tail the runs that can change.

        `watched` are the runs on screen: they are tailed even when finished, so a file that
        is rewritten still shows. `force` (the refresh key) lists now, rereads every run's
        summary and status, and rereads the watched runs from the start.
        """
        result = PollResult()
        watched = set(watched)
        now = self.clock()
        if force or self._last_listing is None or now - self._last_listing >= self.relist_interval:
            self._last_listing = now
            self._relist(result, reread=watched if force else None)
        for run_id, run in self.runs.items():
            if (run.status in LIVE_STATUSES or run_id in watched) and self._tail(run):
                result.changed.add(run_id)
        return result

    def _relist(self, result: PollResult, *, reread: set[str] | None) -> None:
        """Find new and vanished run directories; recheck statuses that time can change.

        With `reread` (a refresh) every summary is read again and those runs from the start.
        """
        self.listings += 1
        try:
            with os.scandir(self.runs_dir) as entries:
                names = {entry.name for entry in entries
                         if not entry.name.startswith(".") and entry.is_dir()}
        except FileNotFoundError:
            names = set()
        except NotADirectoryError:
            log.warning("%s is not a directory of runs", self.runs_dir)
            names = set()
        for run_id in sorted(set(self.runs) - names):
            del self.runs[run_id]
            result.removed.append(run_id)
        for name in sorted(names - set(self.runs)):
            run = self._discover(self.runs_dir / name)
            if run is not None:
                self.runs[name] = run
                result.added.append(name)
        added = set(result.added)
        for run_id, run in self.runs.items():
            if run_id in added:
                continue
            check = run.status in LIVE_STATUSES  # e.g. its writer died without a word
            if not check and reread is None and self._tail(run):  # appended to: resumed
                result.changed.add(run_id)
            if reread is not None or (run.summary is None and run.summary_retries > 0):
                run.summary_retries = max(0, run.summary_retries - 1)
                run.summary = _read_json_object(run.path / SUMMARY_FILE)
                check = True
            if reread is not None and run_id in reread:
                run.reset()
                self._tail(run)
                result.changed.add(run_id)
            if check and run.refresh_status():
                run.version += 1
                result.changed.add(run_id)

    def _discover(self, path: Path) -> TrackedRun | None:
        """A newly seen run directory; None while it has no config.json (not a run, yet)."""
        config = _read_json_object(path / CONFIG_FILE)
        if config is None:
            return None
        run = TrackedRun(path=path, config=config,
                         summary=_read_json_object(path / SUMMARY_FILE))
        self._tail(run)
        first = [{"time": run.first_time}] if run.first_time is not None else []
        run.started = RunView(path=path, run_id=path.name, config=config, events=first,
                              summary=run.summary, status=run.status).started
        run.refresh_status()
        return run

    def _tail(self, run: TrackedRun) -> bool:
        """Read what was appended to the run's events since last time; True if it changed."""
        try:
            size = os.stat(run.path / EVENTS_FILE).st_size
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning("%s: cannot be read (%s)", run.path / EVENTS_FILE,
                        exc.strerror or exc)
            return False
        if size == run.offset:
            return False
        if size < run.offset:
            log.warning("%s: shorter than before; reading it again", run.path / EVENTS_FILE)
            run.reset()
        self.reads += 1
        events, run.offset = read_events_since(run.path, run.offset)
        changed = run.feed(events)
        if changed and run.summary is None and run.status not in LIVE_STATUSES:
            run.summary_retries = _SUMMARY_RETRIES  # summary.json follows the last event
        return changed
