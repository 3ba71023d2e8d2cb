"""`seqbench compare`: recorded runs side by side, from their files alone.

One row per run and protocol (or per group of runs, as mean ± sample std), with the numbers the
reference experiment reports: dataset | loss | metrics | memory | time. Runs that failed or are
still going are listed with their status rather than dropped, so a table never silently hides
an experiment. The same rows export as markdown, csv or json, and as PNG charts (`--plot`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from seqbench.errors import SeqbenchError
from seqbench.report.format import format_bytes, format_metric
from seqbench.report.run_table import HEADLINE
from seqbench.runs.read import RunView, list_runs, read_run

log = logging.getLogger(__name__)

FORMATS = ("table", "markdown", "csv", "json")
GROUP_FIELDS = ("dataset", "model", "loss", "backend", "protocol", "seed", "variant", "status",
                "device", "memory_kind")
PRETRAIN_MODEL = "s3rec-pretrain"
PRETRAIN_LOSS = "pretrain"  # what --loss matches for pretraining runs (they ignore train.loss)
_STATUS_STYLES = {"finished": "green", "failed": "bold red", "interrupted": "yellow",
                  "running": "cyan", "unknown": "dim"}
_COUNTS = ("peak_memory_bytes", "epochs", "parameters")
_DASH = "-"
_SAME = "—"  # a baseline row compared with itself


@dataclass
class CompareOptions:
    """What `seqbench compare` was asked for (None = the option was not given)."""

    runs: list[Path] = field(default_factory=list)
    runs_dir: Path = Path("runs")
    datasets: list[str] | None = None
    losses: list[str] | None = None
    last: int | None = None
    protocols: list[str] | None = None
    metrics: list[str] | None = None
    group_by: list[str] | None = None
    baseline: str | None = None
    output_format: str = "table"
    plot_dir: Path | None = None


# ---------------------------------------------------------------------------------------------
# one run, as the table needs it


@dataclass
class RunFacts:
    """The fields of one run that compare shows, whichever file they had to come from.

    A finished run has them all in summary.json; a failed or running one only has config.json
    and its epoch events, so memory, time and epochs are recomputed from those.
    """

    view: RunView
    dataset: str
    model: str
    loss: str  # train.loss ("ce", "cce", ...), or PRETRAIN_LOSS
    backend: str  # e.g. "cce[cuda-kernel]"
    seed: int | None
    variant: str | None  # S3Rec: "r16" or "full" (pretrain runs and runs fine-tuned from one)
    rank: int | None  # S3Rec: the low-rank heads' rank; None for full-rank or plain runs
    device: str | None
    status: str
    peak_memory_bytes: float | None
    memory_kind: str | None
    mean_epoch_seconds: float | None
    epochs: int | None
    parameters: int | None
    test: dict[str, dict[str, float]]

    @property
    def is_pretrain(self) -> bool:
        return self.model == PRETRAIN_MODEL

    @property
    def is_finetuned_from_pretrain(self) -> bool:
        finetune = self.view.config.get("finetune")
        return (isinstance(finetune, dict) and "pretrain_rank" in finetune
                and bool(finetune.get("init_from")))

    @property
    def label(self) -> str:
        """Short legend label, e.g. `beauty ce s0` or `s3rec bce r16 s0`."""
        parts = [self.dataset, self.loss]
        if self.variant:
            parts.append(self.variant)
        parts.append(f"s{self.seed}" if self.seed is not None else "s?")
        return " ".join(parts)

    def value(self, name: str) -> str | int | None:
        """A field by its --group-by name."""
        return {"dataset": self.dataset, "model": self.model, "loss": self.loss,
                "backend": self.backend, "seed": self.seed, "variant": self.variant,
                "status": self.status, "device": self.device,
                "memory_kind": self.memory_kind}[name]


def run_facts(view: RunView) -> RunFacts:
    """Everything compare needs from one run directory: summary first, then config and events."""
    summary = view.summary or {}
    config = view.config
    section = _section
    resolved, train, data = section(config, "resolved"), section(config, "train"), section(
        config, "data")
    model = str(_first(summary.get("model"), resolved.get("model"), "?"))
    is_pretrain = model == PRETRAIN_MODEL
    loss = PRETRAIN_LOSS if is_pretrain else str(_first(summary.get("loss"), train.get("loss"),
                                                        "?"))
    backend = PRETRAIN_LOSS if is_pretrain else str(
        _first(summary.get("loss_backend"), resolved.get("loss_backend"), loss))
    variant, rank = _variant(config, summary, is_pretrain)
    epochs = view.events_of("epoch")
    epoch_seconds = [s for s in (_number(e.get("epoch_seconds")) for e in epochs) if s is not None]
    memory = [m for m in (_number(e.get("peak_memory_bytes")) for e in epochs) if m is not None]
    memory_kinds = [e["memory_kind"] for e in epochs if isinstance(e.get("memory_kind"), str)]
    seed = _first(summary.get("seed"), train.get("seed"))
    parameters = _first(_number(summary.get("parameters")), _number(resolved.get("parameters")))
    epochs_run = _first(_number(summary.get("epochs_run")), float(len(epochs)) if epochs else None)
    return RunFacts(
        view=view,
        dataset=str(_first(summary.get("dataset"), data.get("dataset"), "?")),
        model=model,
        loss=loss,
        backend=backend,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        variant=variant,
        rank=rank,
        device=_first(summary.get("device"), resolved.get("device")),
        status=view.status,
        peak_memory_bytes=_first(_number(summary.get("peak_memory_bytes")),
                                 max(memory) if memory else None),
        memory_kind=_first(summary.get("memory_kind"), memory_kinds[-1] if memory_kinds else None),
        mean_epoch_seconds=_first(_number(summary.get("mean_epoch_seconds")),
                                  statistics.fmean(epoch_seconds) if epoch_seconds else None),
        epochs=int(epochs_run) if epochs_run is not None else None,
        parameters=int(parameters) if parameters is not None else None,
        test=_test_metrics(summary.get("test")),
    )


def _variant(config: dict[str, Any], summary: dict[str, Any], is_pretrain: bool
             ) -> tuple[str | None, int | None]:
    """S3Rec's pretraining variant ("r16" or "full") and rank, for pretrain and fine-tune runs."""
    if is_pretrain:
        rank = _section(config, "resolved").get("rank")
    else:
        finetune = _section(config, "finetune")
        if "pretrain_rank" not in finetune or not finetune.get("init_from"):
            return None, None
        rank = finetune.get("pretrain_rank")
    rank = rank if isinstance(rank, int) and not isinstance(rank, bool) else None
    variant = summary.get("variant") if is_pretrain else None
    if not isinstance(variant, str):
        variant = f"r{rank}" if rank else "full"
    return variant, rank


def _test_metrics(test: Any) -> dict[str, dict[str, float]]:
    """{protocol: {metric: value}} keeping only finite numbers (anything else reads as missing)."""
    if not isinstance(test, dict):
        return {}
    result = {}
    for protocol, metrics in test.items():
        if isinstance(metrics, dict):
            result[str(protocol)] = {str(name): number for name, value in metrics.items()
                                     if (number := _number(value)) is not None}
    return result


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    """A finite number, or None: files written by hand or by an old version may hold anything."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


# ---------------------------------------------------------------------------------------------
# choosing the runs


def select_runs(options: CompareOptions) -> tuple[list[RunFacts], str]:
    """The runs to compare after filters and --last, and what they were read from (for titles)."""
    if options.runs:
        views = []
        for path in options.runs:
            view = read_run(path) if Path(path).is_dir() else None
            if view is None:
                raise SeqbenchError(f"{path} is not a run directory (no readable config.json)")
            views.append(view)
        source = f"{len(views)} given runs"
    else:
        views = list_runs(options.runs_dir)
        _report_non_runs(options.runs_dir, views)
        source = str(options.runs_dir)
    facts = [run_facts(view) for view in views]
    if options.datasets:
        facts = [f for f in facts if f.dataset in options.datasets]
    if options.losses:
        facts = [f for f in facts if f.loss in options.losses or f.backend in options.losses]
    if options.last is not None:
        newest = sorted(facts, key=lambda f: (f.view.started, f.view.run_id))[-options.last:]
        keep = {id(f) for f in newest}
        facts = [f for f in facts if id(f) in keep]
    return facts, source


def _report_non_runs(runs_dir: Path, runs: list[RunView]) -> None:
    """Warn once about each directory in `runs_dir` that is not a run (list_runs skips them)."""
    run_paths = {view.path for view in runs}
    try:
        entries = sorted(Path(runs_dir).iterdir())
    except OSError:
        return  # list_runs has already said what is wrong with runs_dir
    for entry in entries:
        if entry.name.startswith(".") or entry in run_paths:
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir:
            log.warning("%s: not a run directory (no readable config.json); skipped", entry)


# ---------------------------------------------------------------------------------------------
# rows: one per run and protocol, or one per group


@dataclass(frozen=True)
class Stat:
    """A value over the runs of a row: mean, sample std (None for one value) and count."""

    mean: float
    std: float | None
    n: int


def summarize(values: Iterable[float | None]) -> Stat | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    std = statistics.stdev(present) if len(present) > 1 else None
    return Stat(statistics.fmean(present), std, len(present))


@dataclass
class Row:
    """Runs shown as one line of the table, all measured with the same protocol."""

    runs: list[RunFacts]
    protocol: str | None  # None: the runs have no test metrics (failed, running, pretraining)
    grouped: bool

    def distinct(self, get: Callable[[RunFacts], Any]) -> list[Any]:
        values = []
        for run in self.runs:
            value = get(run)
            if value not in values:
                values.append(value)
        return values

    def text(self, get: Callable[[RunFacts], Any]) -> str:
        """One value, or the distinct values of a group joined by `/`."""
        values = [v for v in self.distinct(get) if v is not None]
        return "/".join(str(v) for v in values) if values else _DASH

    def only(self, get: Callable[[RunFacts], Any]) -> Any:
        """The value every run in the row shares, else None."""
        values = self.distinct(get)
        return values[0] if len(values) == 1 else None

    @property
    def memory_kind(self) -> str | None:
        kinds = [k for k in self.distinct(lambda r: r.memory_kind) if k is not None]
        return kinds[0] if len(kinds) == 1 else None

    @property
    def mixed_memory_kinds(self) -> bool:
        return len([k for k in self.distinct(lambda r: r.memory_kind) if k is not None]) > 1

    def metric(self, name: str) -> Stat | None:
        if self.protocol is None:
            return None
        return summarize(run.test.get(self.protocol, {}).get(name) for run in self.runs)

    def stat(self, quantity: str) -> Stat | None:
        """peak_memory_bytes, mean_epoch_seconds, epochs or parameters over the row's runs."""
        if quantity == "peak_memory_bytes" and self.mixed_memory_kinds:
            return None  # bytes of RSS and of CUDA allocations do not average
        return summarize(_number(getattr(run, quantity)) for run in self.runs)

    @property
    def status(self) -> str:
        """The shared status, or how many runs of a group have each (`2 finished, 1 failed`)."""
        counts: dict[str, int] = {}
        for run in self.runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        if len(counts) == 1:
            return next(iter(counts))
        return ", ".join(f"{count} {status}" for status, count in counts.items())


def build_rows(facts: list[RunFacts], options: CompareOptions) -> list[Row]:
    """Rows in reading order: dataset, protocol, model, loss, variant, seed, start time."""
    pairs: list[tuple[RunFacts, str | None]] = []
    without_protocol = 0
    for run in facts:
        if not run.test:
            pairs.append((run, None))
            continue
        protocols = [p for p in (options.protocols or list(run.test)) if p in run.test]
        if not protocols:
            without_protocol += 1
        pairs.extend((run, protocol) for protocol in protocols)
    if without_protocol:
        log.info("%d run(s) have no test metrics for --protocol %s; not shown", without_protocol,
                 ",".join(options.protocols or []))
    protocol_order = _protocol_order(facts, options)
    if options.group_by:
        groups: dict[tuple[Any, ...], Row] = {}
        for run, protocol in pairs:
            key = tuple(protocol if name == "protocol" else run.value(name)
                        for name in options.group_by)
            key += (protocol,)  # never average over two protocols
            groups.setdefault(key, Row([], protocol, grouped=True)).runs.append(run)
        rows = list(groups.values())
        _warn_repeated_seeds(rows)
    else:
        rows = [Row([run], protocol, grouped=False) for run, protocol in pairs]

    def order(row: Row) -> tuple[Any, ...]:
        first = row.runs[0]
        return (row.text(lambda r: r.dataset), protocol_order.get(row.protocol, len(
            protocol_order)), row.text(lambda r: r.model), row.text(lambda r: r.backend),
                rank_order(first.variant), first.seed if first.seed is not None else -1,
                first.view.started, first.view.run_id)

    return sorted(rows, key=order)


def _warn_repeated_seeds(rows: list[Row]) -> None:
    """Two runs of one group with the same seed differ in something not grouped by (filter,
    batch size, ...): their spread is not seed noise, and the user should know."""
    for row in rows:
        seeds = [run.seed for run in row.runs if run.seed is not None]
        repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
        if repeated:
            log.warning("group %s / %s / %s (%s) has several runs with seed %s: ± is not only "
                        "seed noise", row.text(lambda r: r.dataset), row.text(lambda r: r.model),
                        row.text(lambda r: r.backend), row.protocol or "no protocol",
                        ", ".join(map(str, repeated)))


def _protocol_order(facts: list[RunFacts], options: CompareOptions) -> dict[str | None, int]:
    names = list(options.protocols or [])
    for run in facts:
        names.extend(p for p in run.test if p not in names)
    return {name: i for i, name in enumerate(names)}


def rank_order(variant: str | None) -> tuple[int, str]:
    """r4 < r8 < r16 < full; runs without a variant first."""
    if variant is None:
        return (-1, "")
    if variant.startswith("r") and variant[1:].isdigit():
        return (int(variant[1:]), variant)
    return (sys.maxsize, variant)


# ---------------------------------------------------------------------------------------------
# relative columns against a baseline loss


@dataclass
class BaselineRefs:
    """The baseline loss's values per dataset (memory, time) and per dataset and protocol
    (metrics), from its finished runs among those shown; each is a mean over its runs."""

    loss: str
    metrics: dict[tuple[str, str], dict[str, float]]
    memory: dict[tuple[str, str], float]  # (dataset, memory kind) -> bytes
    seconds: dict[tuple[str, str | None], float]  # (dataset, device) -> seconds per epoch
    datasets: set[str]

    @classmethod
    def build(cls, loss: str, rows: list[Row], metrics: list[str]) -> BaselineRefs:
        runs_by_protocol: dict[tuple[str, str | None], list[RunFacts]] = {}
        for row in rows:
            for run in row.runs:
                if run.loss == loss and run.status == "finished":
                    bucket = runs_by_protocol.setdefault((run.dataset, row.protocol), [])
                    if run not in bucket:
                        bucket.append(run)
        refs = cls(loss, {}, {}, {}, {dataset for dataset, _ in runs_by_protocol})
        per_dataset: dict[str, list[RunFacts]] = {}
        for (dataset, protocol), runs in runs_by_protocol.items():
            for run in runs:
                if run not in per_dataset.setdefault(dataset, []):
                    per_dataset[dataset].append(run)
            if protocol is None:
                continue
            values = {}
            for name in metrics:
                stat = summarize(run.test.get(protocol, {}).get(name) for run in runs)
                if stat is not None:
                    values[name] = stat.mean
            refs.metrics[(dataset, protocol)] = values
        for dataset, runs in per_dataset.items():
            for kind in {run.memory_kind for run in runs if run.memory_kind}:
                memory = summarize(run.peak_memory_bytes for run in runs
                                   if run.memory_kind == kind)
                if memory is not None:
                    refs.memory[(dataset, kind)] = memory.mean
            for device in {run.device for run in runs}:
                seconds = summarize(run.mean_epoch_seconds for run in runs
                                    if run.device == device)
                if seconds is not None:
                    refs.seconds[(dataset, device)] = seconds.mean
        return refs

    def relative(self, row: Row, quantity: str) -> float | str | None:
        """Change against the baseline as a percentage; a string says why there is none."""
        dataset = row.only(lambda r: r.dataset)
        if dataset is None or any(run.is_pretrain for run in row.runs):
            return None
        if all(run.loss == self.loss for run in row.runs):
            return _SAME
        if dataset not in self.datasets:
            return f"no {self.loss}"
        if quantity == "memory":
            value, kind = row.stat("peak_memory_bytes"), row.memory_kind
            reference = self.memory.get((dataset, kind)) if kind else None
            if value is not None and reference is None and kind is not None:
                return "other kind"  # e.g. CPU RSS against CUDA allocations
        elif quantity == "seconds":  # seconds on a CPU against seconds on a GPU say nothing
            value, device = row.stat("mean_epoch_seconds"), row.only(lambda r: r.device)
            reference = self.seconds.get((dataset, device))
            if value is not None and reference is None:
                return "other device"
        else:
            if row.protocol is None:
                return None
            value = row.metric(quantity)
            reference = self.metrics.get((dataset, row.protocol), {}).get(quantity)
            if value is not None and (dataset, row.protocol) not in self.metrics:
                return f"no {self.loss}"
        if value is None or reference is None or reference == 0:
            return None
        return (value.mean - reference) / reference * 100


# ---------------------------------------------------------------------------------------------
# the table itself, once, for every format


@dataclass
class Column:
    header: str
    numeric: bool
    cell: Callable[[Row], str]
    record: Callable[[Row], dict[str, Any]]
    part: str = "identity"  # identity (which runs a row is), metrics, cost or relative

    @property
    def identity(self) -> bool:
        return self.part == "identity"

    @property
    def terminal_header(self) -> str:
        """The header in the Rich table: `NDCG@10 vs ce` on two lines keeps the column narrow."""
        return self.header.replace(" vs ", "\nvs ")


@dataclass
class Report:
    """The columns and rows every output format is rendered from."""

    columns: list[Column]
    rows: list[Row]
    title: str
    caption: str

    def cells(self, columns: list[Column] | None = None) -> list[list[str]]:
        return [[column.cell(row) for column in columns or self.columns] for row in self.rows]

    def records(self) -> list[dict[str, Any]]:
        result = []
        for row in self.rows:
            record: dict[str, Any] = {}
            for column in self.columns:
                record.update(column.record(row))
            result.append(record)
        return result


def build_report(rows: list[Row], metrics: list[str], options: CompareOptions,
                 source: str) -> Report:
    """Columns in the reference layout: which runs | metrics | memory | time | the rest."""
    grouped = bool(options.group_by)

    def text_column(header: str, get: Callable[[RunFacts], Any]) -> Column:
        return Column(header, False, lambda row: row.text(get),
                      lambda row: {header: _joined(row.distinct(get)) if grouped
                                   else get(row.runs[0])})

    columns = [text_column("dataset", lambda r: r.dataset),
               text_column("model", lambda r: r.model),
               Column("loss", False, lambda row: row.text(lambda r: r.backend),
                      lambda row: {"loss": _joined(row.distinct(lambda r: r.loss)),
                                   "loss_backend": _joined(row.distinct(lambda r: r.backend))})]
    if any(run.variant for row in rows for run in row.runs):
        columns.append(text_column("variant", lambda r: r.variant))
    columns.append(Column("protocol", False, lambda row: row.protocol or _DASH,
                          lambda row: {"protocol": row.protocol}))
    if grouped:
        columns.append(Column("seeds", True, lambda row: str(len(row.runs)),
                              lambda row: {"n": len(row.runs),
                                           "seeds": [r.seed for r in row.runs],
                                           "run_ids": [r.view.run_id for r in row.runs]}))
    else:
        columns.append(Column("seed", True, lambda row: _text(row.runs[0].seed),
                              lambda row: {"seed": row.runs[0].seed}))
        columns.append(Column("run", False, lambda row: _short_id(row.runs[0]),
                              lambda row: {"run_id": row.runs[0].view.run_id,
                                           "path": str(row.runs[0].view.path)}))
    for name in metrics:
        columns.append(Column(name, True, _stat_cell(lambda row, n=name: row.metric(n),
                                                     format_metric),
                              _stat_record(name, lambda row, n=name: row.metric(n), grouped),
                              part="metrics"))
    columns += [
        Column("peak memory", True, _memory_cell,
               lambda row: {**_stat_record("peak_memory_bytes",
                                           lambda r: r.stat("peak_memory_bytes"), grouped)(row),
                            "memory_kind": _joined(row.distinct(lambda r: r.memory_kind))},
               part="cost"),
        Column("epoch s", True, _stat_cell(lambda row: row.stat("mean_epoch_seconds"),
                                           lambda v: f"{v:.2f}"),
               _stat_record("mean_epoch_seconds", lambda r: r.stat("mean_epoch_seconds"),
                            grouped), part="cost"),
        Column("epochs", True, _stat_cell(lambda row: row.stat("epochs"), _count_text),
               _stat_record("epochs", lambda r: r.stat("epochs"), grouped), part="cost"),
        Column("parameters", True, _parameters_cell,
               _stat_record("parameters", lambda r: r.stat("parameters"), grouped), part="cost"),
        Column("status", False, lambda row: row.status, lambda row: {"status": row.status},
               part="cost"),
    ]
    if options.baseline:
        columns += _baseline_columns(options.baseline, rows, metrics)

    kind = (f"grouped by {', '.join(options.group_by or [])}: mean ± sample std over the runs "
            "of each group" if grouped else "one row per run and protocol")
    title = f"Test metrics — {source} ({kind})"
    caption = ("metrics: test split at the best validation epoch · peak memory: the largest "
               "of any epoch, with its kind · epoch s: mean training seconds per epoch")
    if options.baseline:
        caption += (f" · vs {options.baseline}: change against the mean of the finished "
                    f"{options.baseline} runs of the same dataset (metrics: and protocol; "
                    f"memory: and kind; epoch s: and device)")
    return Report(columns, rows, title, caption)


def _baseline_columns(baseline: str, rows: list[Row], metrics: list[str]) -> list[Column]:
    """`NDCG@10 vs ce`, `memory vs ce`, `epoch s vs ce`: percent change against `baseline`."""
    refs = BaselineRefs.build(baseline, rows, metrics)
    quantities = [(name, f"{name} vs {baseline}", f"{name}_vs_{baseline}_pct")
                  for name in metrics]
    quantities += [("memory", f"memory vs {baseline}", f"peak_memory_vs_{baseline}_pct"),
                   ("seconds", f"epoch s vs {baseline}", f"epoch_seconds_vs_{baseline}_pct")]
    missing = sorted({run.dataset for row in rows for run in row.runs if not run.is_pretrain}
                     - refs.datasets)
    if missing:
        log.info("no finished %s runs for dataset(s) %s: their relative cells say 'no %s'",
                 baseline, ", ".join(missing), baseline)
    return [Column(header, True,
                   lambda row, q=quantity: _relative_text(refs.relative(row, q)),
                   lambda row, q=quantity, k=key: {k: _relative_number(refs.relative(row, q))},
                   part="relative")
            for quantity, header, key in quantities]


def _short_id(run: RunFacts) -> str:
    """The random tail of a run id (`f911`): enough to tell two runs of one table apart."""
    return run.view.run_id.rsplit("-", 1)[-1]


def _stat_cell(get: Callable[[Row], Stat | None], fmt: Callable[[float], str]
               ) -> Callable[[Row], str]:
    def cell(row: Row) -> str:
        stat = get(row)
        if stat is None:
            return _DASH
        text = fmt(stat.mean) if stat.std is None else f"{fmt(stat.mean)} ± {fmt(stat.std)}"
        if row.grouped and stat.n < len(row.runs):
            text += f" (n={stat.n})"  # some runs of the group lack this value
        return text
    return cell


def _memory_cell(row: Row) -> str:
    """`9.10 GiB (cuda-allocated)`; a group's std in the unit of its mean."""
    if row.mixed_memory_kinds:
        return "mixed kinds"
    stat = row.stat("peak_memory_bytes")
    if stat is None:
        return _DASH
    text = format_bytes(stat.mean)
    if stat.std is not None:
        number, unit = text.split(" ")
        scale = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}[unit]
        text = f"{number} ± {stat.std / scale:.2f} {unit}"
    if row.grouped and stat.n < len(row.runs):
        text += f" (n={stat.n})"
    return f"{text} ({row.memory_kind})" if row.memory_kind else text


def _parameters_cell(row: Row) -> str:
    """Runs of one model usually share their size: then it is one number, not `n ± 0`."""
    same = row.only(lambda r: r.parameters)
    if same is not None:
        return _count_text(float(same))
    return _stat_cell(lambda r: r.stat("parameters"), _count_text)(row)


def _stat_record(key: str, get: Callable[[Row], Stat | None], grouped: bool
                 ) -> Callable[[Row], dict[str, Any]]:
    """A plain number per run; `_mean` and `_std` keys per group (std null for one value)."""
    def record(row: Row) -> dict[str, Any]:
        stat = get(row)
        if not grouped:
            return {key: None if stat is None else _exact(key, stat.mean)}
        return {f"{key}_mean": None if stat is None else stat.mean,
                f"{key}_std": None if stat is None else stat.std}
    return record


def _exact(key: str, value: float) -> float | int:
    """Counts (bytes, epochs, parameters) as integers; metrics and seconds stay floats."""
    return int(value) if key in _COUNTS and value.is_integer() else value


def _count_text(value: float) -> str:
    return f"{value:,.0f}" if value.is_integer() else f"{value:,.1f}"


def _relative_text(value: float | str | None) -> str:
    if value is None:
        return _DASH
    if isinstance(value, str):
        return value
    return f"{value:+.1f}%"


def _relative_number(value: float | str | None) -> float | None:
    if value == _SAME:
        return 0.0
    return value if isinstance(value, float) else None


def _joined(values: list[Any]) -> str | None:
    """A group's distinct values as one string (`a/b`), the same type in every row."""
    present = [str(v) for v in values if v is not None]
    return "/".join(present) if present else None


def _text(value: Any) -> str:
    return _DASH if value is None else str(value)


# ---------------------------------------------------------------------------------------------
# output formats


def render_tables(report: Report, width: int) -> list[Table]:
    """The Rich table; split into stacked tables when it is wider than `width`.

    Numbers cut to `0.…` help nobody. So a table too wide for the terminal first puts long
    cells on two lines (`9.10 GiB` over `(cuda-allocated)`, a mean over its `± std`), and if
    that is not enough it is broken into several tables, each repeating the columns that say
    which runs a row is (dataset, loss, protocol, seed).
    """
    for compact in (False, True):
        full = _rich_table(report, report.columns, compact=compact)
        if _table_width(full) <= width:
            return [full]
    identity = [c for c in report.columns if c.identity]
    parts: dict[str, list[Column]] = {}
    for column in report.columns:
        if not column.identity:
            parts.setdefault(column.part, []).append(column)

    def fits(columns: list[Column]) -> bool:
        return _table_width(_rich_table(report, identity + columns, compact=True)) <= width

    chunks: list[list[Column]] = [[]]
    for part in parts.values():  # keep a part (metrics, memory and time, ...) together
        if chunks[-1] and not fits(chunks[-1] + part):
            chunks.append([])
        if fits(chunks[-1] + part):
            chunks[-1] += part
            continue
        for column in part:  # a part too wide on its own: as many columns as fit per table
            if chunks[-1] and not fits([*chunks[-1], column]):
                chunks.append([])
            chunks[-1].append(column)
    tables = [_rich_table(report, identity + chunk, compact=True) for chunk in chunks]
    for i, table in enumerate(tables):
        table.title = escape(f"{report.title} [{i + 1}/{len(tables)}]") if i == 0 else escape(
            f"(continued {i + 1}/{len(tables)})")
        table.caption = escape(report.caption) if i == len(tables) - 1 else None
    return tables


def _rich_table(report: Report, columns: list[Column], *, compact: bool = False) -> Table:
    table = Table(title=escape(report.title), title_justify="left",
                  caption=escape(report.caption), caption_justify="left")
    for column in columns:
        table.add_column(escape(column.terminal_header),
                         justify="right" if column.numeric else "left", no_wrap=True)
    for row, cells in zip(report.rows, report.cells(columns), strict=True):
        texts = []
        for column, cell in zip(columns, cells, strict=True):
            if compact and not column.identity:
                cell = cell.replace(" ± ", "\n± ").replace(" (", "\n(")
            text = Text(cell)  # Text, not markup: brackets in `ce[torch]` stay literal
            if column.header == "status":
                statuses = row.distinct(lambda r: r.status)
                text.stylize(_STATUS_STYLES.get(statuses[0], "dim") if len(statuses) == 1
                             else "yellow")
            texts.append(text)
        table.add_row(*texts)
    return table


def _table_width(table: Table) -> int:
    """Width of `table` with every cell on its own lines (nothing wraps: no_wrap columns)."""
    console = Console(width=100_000, file=io.StringIO())
    return Measurement.get(console, console.options, table).maximum


def render_markdown(report: Report) -> str:
    """A GitHub table: header, alignment row, one line per row, `|` in cells escaped."""
    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(_markdown_cell(c) for c in cells) + " |"

    lines = [line(c.header for c in report.columns),
             "|" + "|".join("---:" if c.numeric else "---" for c in report.columns) + "|"]
    lines += [line(cells) for cells in report.cells()]
    return "\n".join(lines) + "\n"


def _markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_csv(report: Report) -> str:
    records = report.records()
    buffer = io.StringIO()
    header = list(records[0]) if records else [c.header for c in report.columns]
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({key: _csv_value(value) for key, value in record.items()})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(_text(v) for v in value)
    return value


def render_json(report: Report) -> str:
    return json.dumps(report.records(), indent=2, allow_nan=False) + "\n"


# ---------------------------------------------------------------------------------------------
# the command


def compare_command(options: CompareOptions, console: Console) -> None:
    """Read the runs, build the rows once, and print them in the asked format (and charts)."""
    output_format = options.output_format.lower()
    if output_format not in FORMATS:
        raise SeqbenchError(f"--format {options.output_format!r} is not one of: "
                            f"{', '.join(FORMATS)}")
    for name in options.group_by or []:
        if name not in GROUP_FIELDS:
            raise SeqbenchError(f"--group-by {name!r} is not one of: {', '.join(GROUP_FIELDS)}")
    if options.last is not None and options.last < 1:
        raise SeqbenchError(f"--last must be at least 1, got {options.last}")

    facts, source = select_runs(options)
    if not facts:
        _say_no_runs(options, console, output_format)
        return
    metrics = _check_metrics(options, facts)
    _check_protocols(options, facts)
    rows = build_rows(facts, options)
    report = build_report(rows, metrics, options, source)
    if output_format == "table":
        for table in render_tables(report, console.width):
            console.print(table)
    else:
        render = {"markdown": render_markdown, "csv": render_csv, "json": render_json}
        _print_plain(console, render[output_format](report))
    if options.plot_dir is not None:
        from seqbench.report.plots import write_plots

        shown = {id(run) for row in rows for run in row.runs}
        written = write_plots([f for f in facts if id(f) in shown], options.plot_dir,
                              protocols=options.protocols)
        if output_format == "table":
            names = "\n".join(f"  {escape(str(path))}" for path in written)
            console.print(f"Wrote {len(written)} chart(s):\n{names}", highlight=False)
        else:  # stdout holds the export; keep it parseable
            for path in written:
                log.info("wrote %s", path)


def _check_metrics(options: CompareOptions, facts: list[RunFacts]) -> list[str]:
    """--metrics as asked (each must be recorded somewhere), else the headline metrics (a run
    that lacks one shows "-")."""
    if not options.metrics:
        return list(HEADLINE)
    metrics = list(options.metrics)
    available = sorted({name for run in facts for values in run.test.values()
                        for name in values}, key=_metric_order)
    unknown = [name for name in metrics if available and name not in available]
    if unknown:
        raise SeqbenchError(f"--metrics {', '.join(unknown)}: not recorded by these runs; "
                            f"available: {', '.join(available)}")
    return metrics


def _metric_order(name: str) -> tuple[int, str]:
    base, _, k = name.partition("@")
    return (int(k) if k.isdigit() else sys.maxsize, base)


def _check_protocols(options: CompareOptions, facts: list[RunFacts]) -> None:
    available = list(dict.fromkeys(p for run in facts for p in run.test))
    unknown = [p for p in options.protocols or [] if available and p not in available]
    if unknown:
        raise SeqbenchError(f"--protocol {', '.join(unknown)}: not recorded by these runs; "
                            f"available: {', '.join(available)}")


def _say_no_runs(options: CompareOptions, console: Console, output_format: str) -> None:
    filtered = options.datasets or options.losses
    if filtered:
        message = "No runs match the filters"
        message += f" (--dataset {','.join(options.datasets)})" if options.datasets else ""
        message += f" (--loss {','.join(options.losses)})" if options.losses else ""
        message += "."
    elif options.runs:
        message = "No runs given."
    else:
        message = (f"No runs in {options.runs_dir}. Record one with `seqbench bench` (e.g. "
                   f"`seqbench bench --loss ce,cce --runs-dir {options.runs_dir}`), then compare "
                   f"again.")
    if output_format == "table":
        console.print(escape(message), highlight=False)
        return
    log.warning("%s", message)  # stdout stays a valid, empty export
    if output_format == "json":
        _print_plain(console, "[]\n")


def _print_plain(console: Console, text: str) -> None:
    """Exports go out verbatim: no markup, no highlighting, no wrapping."""
    console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True, end="")
