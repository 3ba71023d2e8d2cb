"""Recorded runs written to experiment trackers (MLflow, TensorBoard) from their files alone.

`records` turns a run directory into what a tracker stores (parameters, per-epoch metrics,
final metrics), with no tracker imported; `mlflow_sync` and `tensorboard_sync` write it,
importing their optional packages (extra `track`) only when asked to; `sync` chooses the runs,
checks every target before anything is written, and runs the targets. docs/tracking.md
describes what is written where.
"""

from seqbench.track.sync import SyncOptions, SyncResult, sync_runs

__all__ = ["SyncOptions", "SyncResult", "sync_runs"]
