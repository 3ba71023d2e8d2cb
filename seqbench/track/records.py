"""What a tracker is given for one recorded run, read from its files alone (no tracker here).

Both trackers get the same names, so an MLflow chart and a TensorBoard chart of a run say the
same thing. Every metric carries its split and, for rankings, its protocol
(`valid/full/NDCG_at_10`, `test/sampled-99/HR_at_10`), so full-ranking and sampled numbers
never share a series. MLflow allows only letters, digits, `_ - . / space` (and `:` off
Windows) in a name, so `@` becomes `_at_` and any other character outside that set becomes
`_` (`metric_name`); docs/tracking.md has the whole scheme.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench.runs.read import CONFIG_FILE, SUMMARY_FILE, RunView
from seqbench.runs.schema import (
    TERMINAL_EVENTS,
    EpochRecord,
    ResolvedView,
    integer,
    metrics,
    number,
)

#: config.json tables that are settings (spelled as the TOML keys), logged as parameters
SETTING_TABLES = ("data", "model", "train", "eval", "pretrain", "finetune")
#: the marker metric: its value and step are the epoch; its last step is the last epoch synced
EPOCH_METRIC = "epoch"
#: per-epoch measurements of the run itself, under perf/
PERF_FIELDS = ("epoch_seconds", "valid_seconds", "sequences_per_second", "peak_memory_bytes")
#: summary.json numbers logged once, under summary/, at the final step
SUMMARY_NUMBERS = ("best_epoch", "epochs_run", "mean_epoch_seconds", "peak_memory_bytes",
                   "sequences_per_second")
#: MLflow keeps at most this many characters of a parameter value
MAX_PARAM_LENGTH = 6000

_ALLOWED = re.compile(r"[^A-Za-z0-9_\-. ]")


@dataclass
class EpochRow:
    """One epoch's metrics, by name; `time` is when the epoch was recorded (unix seconds)."""

    epoch: int
    time: float | None
    values: dict[str, float]


@dataclass
class RunRecord:
    """Everything a tracker stores for a run, in tracker-neutral form."""

    run_id: str
    status: str  # a seqbench status: running, finished, failed, interrupted, unknown
    path: Path
    started: float  # unix seconds
    ended: float | None  # when the closing event was written; None while running
    params: dict[str, str]
    tags: dict[str, str]
    epochs: list[EpochRow]
    #: test, baseline and summary numbers from summary.json; empty without one (or for a
    #: failed run, whose summary has none)
    final: dict[str, float] = field(default_factory=dict)
    final_step: int = 0
    #: summary.json as read, None until the run has ended
    summary: dict[str, Any] | None = None

    @property
    def has_summary(self) -> bool:
        return self.summary is not None

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def last_epoch(self) -> int:
        return self.epochs[-1].epoch if self.epochs else 0

    def epochs_after(self, epoch: int) -> list[EpochRow]:
        """The epochs a tracker that has everything up to `epoch` still lacks."""
        return [row for row in self.epochs if row.epoch > epoch]

    def summary_text(self) -> str:
        """summary.json as Markdown (a fenced JSON block), for trackers that show text."""
        body = json.dumps(self.summary, indent=2, sort_keys=False)
        return f"**{self.run_id}**: {self.status}\n\n```json\n{body}\n```"

    def params_text(self) -> str:
        """The parameters as a Markdown table, for trackers without a parameter store."""
        lines = ["| parameter | value |", "|---|---|"]
        lines += [f"| {key} | {_markdown_cell(value)} |" for key, value in self.params.items()]
        return "\n".join(lines)


def metric_name(*parts: str) -> str:
    """A name every tracker accepts, from its parts: `("valid", "full", "NDCG@10")` ->
    `valid/full/NDCG_at_10`. A part never contains `/` (it would add a level), and no part is
    empty or `.`/`..` (MLflow treats names as paths)."""
    cleaned = []
    for part in parts:
        text = _ALLOWED.sub("_", str(part).replace("@", "_at_")).strip()
        cleaned.append("_" if text in ("", ".", "..") else text)
    return "/".join(cleaned)


def run_record(view: RunView) -> RunRecord:
    """What the trackers get for the run `view` reads, as far as it has been written."""
    summary = view.summary
    epochs = [_epoch_row(record, event_time)
              for record, event_time in _unique_epochs(view)]
    final, final_step = _final(summary, epochs)
    return RunRecord(run_id=view.run_id, status=view.status, path=view.path,
                     started=view.started, ended=_ended(view), params=run_params(view.config),
                     tags=run_tags(view), epochs=epochs, final=final, final_step=final_step,
                     summary=summary)


def run_params(config: Mapping[str, Any]) -> dict[str, str]:
    """Every setting of config.json as `table.key` (`train.loss`, `model.dim`), then what the
    run resolved (`resolved.model`, `resolved.loss_backend`, `resolved.dataset_stats.users`,
    ...). Values are text: strings as they are, anything else as JSON (`[5, 10]`, `null`)."""
    params: dict[str, str] = {}
    for table in (*SETTING_TABLES, "resolved"):
        value = config.get(table)
        if isinstance(value, Mapping):
            params.update(_flatten(value, table))
    # the variant of a pretraining (or of the one a fine-tuning started from), which 0.1.0
    # records do not spell out
    variant = _resolved_variant(config)
    if variant is not None:
        params.setdefault("resolved.variant", variant)
    return params


def run_tags(view: RunView) -> dict[str, str]:
    """Labels to find and filter runs by (`seqbench.run_id` is the one a sync matches on)."""
    resolved = view.resolved
    env = view.environment
    source = env.get("source") if isinstance(env.get("source"), Mapping) else {}
    summary = view.summary_view
    tags = {"seqbench.run_id": view.run_id, "seqbench.status": view.status,
            "seqbench.model": resolved.model, "seqbench.dataset": resolved.dataset,
            "seqbench.split": resolved.split,
            "seqbench.loss": resolved.loss if resolved.kind is None
            or not resolved.kind.is_pretraining else None,
            "seqbench.loss_backend": resolved.loss_backend,
            "seqbench.variant": resolved.variant, "seqbench.seed": resolved.seed,
            "seqbench.device": resolved.device, "seqbench.version": env.get("seqbench"),
            "seqbench.git_commit": source.get("git_commit"),
            "seqbench.host": env.get("hostname"),
            "seqbench.memory_kind": summary.memory_kind or _last_memory_kind(view),
            "seqbench.source_path": str(view.path)}
    error = summary.error
    if error:
        message = f"{error.get('type') or 'error'}: {error.get('message') or ''}".strip()
        tags["seqbench.error"] = message[:MAX_PARAM_LENGTH]
    return {key: str(value) for key, value in tags.items() if value is not None}


# ---------------------------------------------------------------------------------------------


def _unique_epochs(view: RunView) -> list[tuple[EpochRecord, float | None]]:
    """The epoch events with their times, one per epoch number (a resume that re-ran an epoch
    whose event a kill had already written keeps the later one), in epoch order."""
    by_epoch: dict[int, tuple[EpochRecord, float | None]] = {}
    for event in view.events_of("epoch"):
        record = EpochRecord.from_event(event)
        if record is None or record.epoch < 0:
            continue
        by_epoch[record.epoch] = (record, number(event.get("time")))
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def _epoch_row(record: EpochRecord, event_time: float | None) -> EpochRow:
    values: dict[str, float] = {}
    for loss, value in record.losses.items():
        values[metric_name("train", loss)] = value
    for protocol, numbers in (record.valid or {}).items():
        for metric, value in numbers.items():
            values[metric_name("valid", protocol, metric)] = value
    measured = {"epoch_seconds": record.seconds, "valid_seconds": record.valid_seconds,
                "sequences_per_second": record.sequences_per_second,
                "peak_memory_bytes": record.peak_memory_bytes}
    for name in PERF_FIELDS:
        value = number(measured[name])
        if value is not None:
            values[metric_name("perf", name)] = value
    values[EPOCH_METRIC] = float(record.epoch)  # last, so it is written after the others
    return EpochRow(epoch=record.epoch, time=event_time, values=values)


def _final(summary: Mapping[str, Any] | None, epochs: list[EpochRow]
           ) -> tuple[dict[str, float], int]:
    """Test and baseline metrics (with their protocol) and the summary's numbers, and the step
    to log them at: the best validation epoch, for which test was computed."""
    if summary is None:
        return {}, 0
    final: dict[str, float] = {}
    for protocol, numbers in metrics(summary.get("test")).items():
        for metric, value in numbers.items():
            final[metric_name("test", protocol, metric)] = value
    baseline = summary.get("baseline")
    if isinstance(baseline, Mapping):
        for protocol, numbers in metrics(baseline.get("test")).items():
            for metric, value in numbers.items():
                final[metric_name("baseline", "test", protocol, metric)] = value
    for name in SUMMARY_NUMBERS:
        value = number(summary.get(name))
        if value is not None:
            final[metric_name("summary", name)] = value
    step = (integer(summary.get("best_epoch")) or integer(summary.get("epochs_run"))
            or (epochs[-1].epoch if epochs else 0))
    return final, step


def _ended(view: RunView) -> float | None:
    """When the run closed: the time of its closing event (else of its last event, for a run
    whose writer is gone); None while it runs."""
    if view.status == "running":
        return None
    for event in reversed(view.events):
        if event.get("event") in TERMINAL_EVENTS and number(event.get("time")) is not None:
            return number(event.get("time"))
    times = [t for event in view.events if (t := number(event.get("time"))) is not None]
    return max(times) if times else None


def _last_memory_kind(view: RunView) -> str | None:
    kinds = [record.memory_kind for record in view.epochs() if record.memory_kind]
    return kinds[-1] if kinds else None


def _resolved_variant(config: Mapping[str, Any]) -> str | None:
    return ResolvedView.from_config(config).variant


def _flatten(table: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, str]]:
    for key, value in table.items():
        name = f"{prefix}.{_ALLOWED.sub('_', str(key))}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, name)
        else:
            yield name, param_value(value)


def param_value(value: Any) -> str:
    """A parameter's text: strings as they are, anything else as JSON; cut to MLflow's limit."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=False, default=str)
    return text if len(text) <= MAX_PARAM_LENGTH else text[:MAX_PARAM_LENGTH - 3] + "..."


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
