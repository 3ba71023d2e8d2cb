"""Write recorded runs as TensorBoard event files, without TensorFlow or torch.

One subdirectory per run id under the log directory. Event files cannot be edited, only
added to, so what has been written is kept in a small state file next to them
(`<logdir>/<run-id>/.seqbench-sync.json`: the last epoch written, whether the summary was);
a later sync writes a new event file with only what came after. tensorboard is an optional
dependency (extra `track`); its own writer (`EventFileWriter`, the protobufs it ships) needs
neither TensorFlow nor torch.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from seqbench.errors import SeqbenchError
from seqbench.fsutil import atomic_write_json
from seqbench.track.records import RunRecord
from seqbench.track.target import Outcome, check_creatable_dir

log = logging.getLogger(__name__)

STATE_FILE = ".seqbench-sync.json"
STATE_FORMAT = 1
EVENT_FILE_SUFFIX = ".seqbench"
INSTALL_HINT = 'sync --tensorboard needs tensorboard: pip install "seqbench[track]"'
# text summaries (shown in TensorBoard's Text tab)
PARAMS_TAG, SUMMARY_TAG = "params", "summary"


class TensorBoardTarget:
    """A TensorBoard log directory (`tensorboard --logdir DIR` shows every run in it)."""

    name = "TensorBoard"

    def __init__(self, logdir: Path) -> None:
        self.logdir = Path(logdir)

    def check(self, records: list[RunRecord]) -> None:
        """tensorboard is installed, DIR is (or can become) a directory, and each run's
        subdirectory is either new or one this command wrote (it has the state file)."""
        if importlib.util.find_spec("tensorboard") is None:
            raise SeqbenchError(INSTALL_HINT)
        check_creatable_dir(self.logdir, f"--tensorboard {self.logdir}")
        for record in records:
            run_dir = self.logdir / record.run_id
            if run_dir.exists() and not run_dir.is_dir():
                raise SeqbenchError(f"--tensorboard {self.logdir}: {run_dir} is a file, not "
                                    "a run's directory")
            if run_dir.is_dir():
                state = _read_state(run_dir)
                if state is None and any(run_dir.glob("events.out.tfevents.*")):
                    raise SeqbenchError(
                        f"--tensorboard {self.logdir}: {run_dir} has event files but no "
                        f"{STATE_FILE}, so what it holds is unknown; move it away to write "
                        "the run again")

    def connect(self) -> None:
        """Nothing to reach: a directory, checked by `check`."""

    def sync(self, record: RunRecord) -> Outcome:
        run_dir = self.logdir / record.run_id
        state = _read_state(run_dir) if run_dir.is_dir() else None
        created = state is None
        state = state or {"format": STATE_FORMAT, "run_id": record.run_id, "last_epoch": 0,
                          "summary_written": False}
        last = int(state.get("last_epoch") or 0)
        rows = record.epochs_after(last)
        write_summary = record.has_summary and not state.get("summary_written")
        events = []
        if created:
            events.append(_text_event(PARAMS_TAG, record.params_text(), 0, record.started))
        for row in rows:
            events.append(_scalars_event(row.values, row.epoch, row.time))
        if write_summary:
            if record.final:
                events.append(_scalars_event(record.final, record.final_step, record.ended))
            events.append(_text_event(SUMMARY_TAG, record.summary_text(), record.final_step,
                                      record.ended))
        if events:
            try:
                _write_events(run_dir, events)
            except OSError as exc:
                raise SeqbenchError(f"{record.run_id}: --tensorboard {run_dir}: cannot write "
                                    f"({exc.strerror or exc})") from None
        status_changed = state.get("status") != record.status
        state.update(last_epoch=max(last, record.last_epoch),
                     summary_written=bool(state.get("summary_written") or write_summary),
                     status=record.status)
        if events or status_changed:
            atomic_write_json(run_dir / STATE_FILE, state)
        return Outcome(target=self.name, new_epochs=len(rows),
                       had_epochs=len(record.epochs) - len(rows), final_written=write_summary,
                       created=created)


def _write_events(run_dir: Path, events: list[Any]) -> None:
    """One new event file with `events`; the state file is written only after it is closed,
    so a sync cut short writes again rather than losing epochs."""
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(run_dir), filename_suffix=EVENT_FILE_SUFFIX)
    try:
        for event in events:
            writer.add_event(event)
    finally:
        writer.close()


def _scalars_event(values: dict[str, float], step: int, wall_time: float | None) -> Any:
    """One event with every scalar of a step (`simple_value`, the classic scalar summary
    every TensorBoard reader, EventAccumulator included, knows)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2

    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)
                                         for tag, value in values.items()])
    return event_pb2.Event(wall_time=_wall(wall_time), step=step, summary=summary)


def _text_event(tag: str, text: str, step: int, wall_time: float | None) -> Any:
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.text.summary_v2 import text_pb

    return event_pb2.Event(wall_time=_wall(wall_time), step=step, summary=text_pb(tag, text))


def _wall(seconds: float | None) -> float:
    import time

    return time.time() if seconds is None else seconds


def _read_state(run_dir: Path) -> dict[str, Any] | None:
    """The state file, or None when there is none; an unreadable one is an error (guessing
    would write duplicates or leave epochs out)."""
    path = run_dir / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SeqbenchError(f"{path}: cannot be read ({exc}); move the directory away to "
                            "write the run again") from None
    if not isinstance(state, dict) or not isinstance(state.get("last_epoch", 0), int):
        raise SeqbenchError(f"{path}: not a seqbench sync state; move the directory away to "
                            "write the run again")
    return state
