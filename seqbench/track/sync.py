"""`seqbench sync`: choose the runs, check every target, then write each run to each target.

Everything that can be found wrong is found before the first write: a RUN that is not a run
directory, an empty runs directory, a tracker that is not installed, a directory that cannot
be created, a tracking server that does not answer. Only the run records are read (never
torch, never the checkpoints), so runs copied from another machine sync the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from seqbench.errors import SeqbenchError
from seqbench.runs.read import RunView, list_runs, read_runs
from seqbench.track.records import RunRecord, run_record
from seqbench.track.target import Outcome, Target

log = logging.getLogger(__name__)


@dataclass
class SyncOptions:
    """What the command line asked for."""

    runs: list[Path] = field(default_factory=list)  # run directories; empty: all of runs_dir
    runs_dir: Path = Path("runs")
    mlflow_uri: str | None = None
    tensorboard_dir: Path | None = None
    experiment: str = "seqbench"


@dataclass
class SyncResult:
    """One run, synced: what each target wrote."""

    record: RunRecord
    outcomes: list[Outcome]


class Sync:
    """The runs to sync and the targets, checked and connected; `run` syncs one run."""

    def __init__(self, records: list[RunRecord], targets: list[Target]) -> None:
        self.records = records
        self.targets = targets

    def run(self, record: RunRecord) -> SyncResult:
        return SyncResult(record, [target.sync(record) for target in self.targets])


def prepare(options: SyncOptions) -> Sync:
    """The runs and the targets, everything checked; nothing has been written yet."""
    targets = make_targets(options)
    records = [run_record(view) for view in select_runs(options)]
    for target in targets:
        target.check(records)
    for target in targets:
        target.connect()
    return Sync(records, targets)


def sync_runs(options: SyncOptions) -> list[SyncResult]:
    """Sync every chosen run to every target (the command line adds progress and a table)."""
    sync = prepare(options)
    return [sync.run(record) for record in sync.records]


def make_targets(options: SyncOptions) -> list[Target]:
    if options.mlflow_uri is None and options.tensorboard_dir is None:
        raise SeqbenchError("sync needs a target: --mlflow URI and/or --tensorboard DIR")
    targets: list[Target] = []
    if options.mlflow_uri is not None:
        from seqbench.track.mlflow_sync import MlflowTarget

        if not options.mlflow_uri.strip():
            raise SeqbenchError("--mlflow needs a tracking URI (e.g. file:./mlruns, "
                                "sqlite:///mlflow.db, http://host:5000)")
        targets.append(MlflowTarget(options.mlflow_uri, options.experiment))
    if options.tensorboard_dir is not None:
        from seqbench.track.tensorboard_sync import TensorBoardTarget

        targets.append(TensorBoardTarget(options.tensorboard_dir))
    return targets


def select_runs(options: SyncOptions) -> list[RunView]:
    """The RUN directories given, else every run in --runs-dir; none is an error."""
    if options.runs:
        views = read_runs(options.runs)
        ids = [view.run_id for view in views]
        duplicates = sorted({run_id for run_id in ids if ids.count(run_id) > 1})
        if duplicates:
            raise SeqbenchError(f"the run {duplicates[0]} is given twice (from different "
                                "directories); a tracker holds one run per run id")
        return views
    runs_dir = Path(options.runs_dir)
    views = list_runs(runs_dir)
    if not views:
        why = "it does not exist" if not runs_dir.exists() else "it has no run directories"
        raise SeqbenchError(f"no runs to sync in {runs_dir} ({why}); give --runs-dir or RUN "
                            "directories")
    return views
