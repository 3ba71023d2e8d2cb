"""Write recorded runs to MLflow: one MLflow run per seqbench run, found again by its tag.

A seqbench run is matched by the tag `seqbench.run_id`, so syncing again never makes a second
MLflow run; only the epochs after the last step of the `epoch` metric's history are logged,
and the summary (test metrics, summary.json) once, when the run has one. mlflow is an optional
dependency (extra `track`) and is imported only here, when a sync asks for it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from seqbench.errors import SeqbenchError
from seqbench.track.records import EPOCH_METRIC, RunRecord
from seqbench.track.target import Outcome, check_creatable_dir

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "seqbench"
RUN_ID_TAG = "seqbench.run_id"
#: set once the summary (test metrics, summary.json artifact) has been logged
SUMMARY_TAG = "seqbench.summary_synced"
#: seqbench status -> MLflow run status (`unknown`: the writer is gone without a word)
STATUSES = {"running": "RUNNING", "finished": "FINISHED", "failed": "FAILED",
            "interrupted": "KILLED", "unknown": "KILLED"}
INSTALL_HINT = 'sync --mlflow needs mlflow: pip install "seqbench[track]"'
#: schemes MLflow's tracking client knows; anything else fails before a request is made
SCHEMES = ("", "file", "sqlite", "http", "https", "postgresql", "mysql", "mssql",
           "databricks", "databricks-uc", "uc")
LOCAL_SCHEMES = ("", "file")
#: the probe must fail fast: no retries, a short timeout (MLflow's defaults, 7 retries with
#: backoff and 120 s, take minutes to give up on a server that is not there)
PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
#: for the writes, unless the user set them: a few retries, not minutes of them
WRITE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
# MLflow's limits per log_batch call
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100


class MlflowTarget:
    """An MLflow tracking URI (file store, database or server) and the experiment to use."""

    name = "MLflow"

    def __init__(self, uri: str, experiment: str = DEFAULT_EXPERIMENT) -> None:
        self.uri = uri
        self.experiment = experiment
        self._client: Any = None
        self._experiment_id: str | None = None

    # -- before anything is written --------------------------------------------------------

    def check(self, records: list[RunRecord]) -> None:
        """mlflow is installed, the URI has a scheme MLflow knows, a local store's directory
        can be created, and the experiment name is usable: all without writing."""
        if importlib.util.find_spec("mlflow") is None:  # found without importing it (slow)
            raise SeqbenchError(INSTALL_HINT)
        if not self.experiment.strip():
            raise SeqbenchError("--experiment must not be empty")
        parsed = urlparse(self.uri)
        scheme = parsed.scheme.lower()
        if len(scheme) == 1:  # a Windows drive letter, C:\...
            scheme = ""
        if scheme not in SCHEMES:
            raise SeqbenchError(f"--mlflow {self.uri}: unsupported URI scheme '{scheme}' "
                                f"(use file:, sqlite:, http: or https:, or a directory)")
        for record in records:
            if "'" in record.run_id or "\\" in record.run_id:
                raise SeqbenchError(f"{record.path}: a run id with quotes or backslashes "
                                    "cannot be matched in MLflow; rename the directory")
        if scheme in LOCAL_SCHEMES:
            check_creatable_dir(_local_path(parsed, self.uri), f"--mlflow {self.uri}")
        elif scheme == "sqlite":
            database = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
            if database and database != ":memory:":
                check_creatable_dir(Path(unquote(database)).parent, f"--mlflow {self.uri}")

    def connect(self) -> None:
        """Reach the tracking store once, fast, before any run is written; find the
        experiment (it is created with the first run)."""
        scheme = urlparse(self.uri).scheme.lower()
        if scheme in LOCAL_SCHEMES or len(scheme) == 1:
            # MLflow 3 refuses the file store unless asked; a file URI given here is asking
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        _quiet_mlflow()  # after the import: importing mlflow configures its loggers
        with _env(PROBE_ENV, override=True):
            try:
                self._client = MlflowClient(tracking_uri=self.uri)
                self._client.search_experiments(max_results=1)
                experiment = self._client.get_experiment_by_name(self.experiment)
            except (MlflowException, OSError) as exc:
                raise SeqbenchError(f"--mlflow {self.uri}: cannot be used: "
                                    f"{_reason(exc)}") from None
        if experiment is not None:
            if experiment.lifecycle_stage != "active":
                raise SeqbenchError(f"--mlflow {self.uri}: the experiment '{self.experiment}' "
                                    "is deleted; restore it or choose another --experiment")
            self._experiment_id = experiment.experiment_id

    # -- writing ---------------------------------------------------------------------------

    def sync(self, record: RunRecord) -> Outcome:
        from mlflow.exceptions import MlflowException

        with _env(WRITE_ENV, override=False):
            try:
                return self._sync(record)
            except (MlflowException, OSError) as exc:
                raise SeqbenchError(f"{record.run_id}: MLflow {self.uri}: {_reason(exc)}"
                                    ) from None

    def _sync(self, record: RunRecord) -> Outcome:
        from mlflow.entities import Metric, Param, RunTag

        client = self._client
        run = self._find(record.run_id)
        created = run is None
        if run is None:
            run = client.create_run(self._experiment(), start_time=_ms(record.started),
                                    tags=record.tags, run_name=record.run_id)
            last = 0
        else:
            last = self._last_epoch(run.info.run_id)
        run_id = run.info.run_id
        logged_params, logged_tags = run.data.params, run.data.tags
        logged_metrics = run.data.metrics

        params = [Param(k, v) for k, v in record.params.items() if k not in logged_params]
        changed = sorted(k for k, v in record.params.items()
                         if k in logged_params and logged_params[k] != v)
        if changed:
            log.warning("%s: MLflow keeps parameters as first logged; changed since: %s",
                        record.run_id, ", ".join(changed))
        tags = [RunTag(k, v) for k, v in record.tags.items() if logged_tags.get(k) != v]
        for chunk in _chunks(params, MAX_PARAMS_PER_BATCH):
            client.log_batch(run_id, params=chunk)
        for chunk in _chunks(tags, MAX_PARAMS_PER_BATCH):
            client.log_batch(run_id, tags=chunk)
        if created:
            client.log_artifact(run_id, str(record.config_file))

        rows = record.epochs_after(last)
        metrics = [Metric(name, value, _ms(row.time), row.epoch)
                   for row in rows for name, value in row.values.items()]
        for chunk in _chunks(metrics, MAX_METRICS_PER_BATCH):  # in order: `epoch` comes last
            client.log_batch(run_id, metrics=chunk)

        final_written = False
        if record.has_summary and logged_tags.get(SUMMARY_TAG) != "true":
            now = _ms(record.ended)
            final = [Metric(name, value, now, record.final_step)
                     for name, value in record.final.items() if name not in logged_metrics]
            for chunk in _chunks(final, MAX_METRICS_PER_BATCH):
                client.log_batch(run_id, metrics=chunk)
            client.log_artifact(run_id, str(record.summary_file))
            client.log_artifact(run_id, str(record.config_file))  # as it is at the end
            client.set_tag(run_id, SUMMARY_TAG, "true")
            final_written = True

        self._set_status(run, record)
        return Outcome(target=self.name, new_epochs=len(rows),
                       had_epochs=len(record.epochs) - len(rows), final_written=final_written,
                       created=created)

    def _experiment(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = self._client.create_experiment(self.experiment)
        return self._experiment_id

    def _find(self, run_id: str) -> Any:
        """The MLflow run synced from `run_id` (the oldest if a concurrent sync made two)."""
        if self._experiment_id is None:
            return None
        runs = self._client.search_runs(
            [self._experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'",
            order_by=["attributes.start_time ASC"], max_results=10)
        if len(runs) > 1:
            log.warning("%s: %d MLflow runs carry this run id; writing to %s", run_id,
                        len(runs), runs[0].info.run_id)
        return runs[0] if runs else None

    def _last_epoch(self, mlflow_run_id: str) -> int:
        history = self._client.get_metric_history(mlflow_run_id, EPOCH_METRIC)
        return max((int(metric.step) for metric in history), default=0)

    def _set_status(self, run: Any, record: RunRecord) -> None:
        status = STATUSES.get(record.status, "KILLED")
        info = run.info
        if status == "RUNNING":
            if info.status != "RUNNING":  # a run resumed after it had ended
                self._client.update_run(info.run_id, status="RUNNING")
        elif info.status != status or info.end_time is None:
            self._client.set_terminated(info.run_id, status=status,
                                        end_time=_ms(record.ended) if record.ended else None)


# ---------------------------------------------------------------------------------------------


def _local_path(parsed: Any, uri: str) -> Path:
    if parsed.scheme.lower() == "file":
        if parsed.netloc not in ("", "localhost"):
            raise SeqbenchError(f"--mlflow {uri}: a file URI names a local directory "
                                "(file:///path), not a host")
        return Path(unquote(parsed.path))
    return Path(uri)


def _ms(seconds: float | None) -> int:
    return int((time.time() if seconds is None else seconds) * 1000)


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@contextlib.contextmanager
def _env(values: dict[str, str], *, override: bool) -> Iterator[None]:
    """MLflow reads its HTTP settings from the environment at every request."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if override or key not in os.environ:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _quiet_mlflow() -> None:
    """MLflow logs its own progress (database migrations, ...) at INFO; seqbench's output is
    the summary table, so only its warnings are shown unless --verbose."""
    if not logging.getLogger("seqbench").isEnabledFor(logging.DEBUG):
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _reason(exc: BaseException) -> str:
    """The gist of an MLflow error, on one line: "Connection refused", not the urllib3 chain."""
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        text = str(exc)
    errno_reason = re.search(r"\[Errno -?\d+\] ([^'\"()\]]+)", text)
    if errno_reason:
        return errno_reason.group(1).strip()
    if "Read timed out" in text or "timed out" in text:
        return "the request timed out"
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."
