"""The table itself, built once: its columns, how each cell reads and what each record holds,
so every output format shows the same numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seqbench.report.compare.baseline import _SAME, BaselineRefs
from seqbench.report.compare.facts import RunFacts
from seqbench.report.compare.options import CompareOptions
from seqbench.report.compare.rows import _DASH, Row, Stat
from seqbench.report.format import format_bytes, format_metric

log = logging.getLogger(__name__)

_COUNTS = ("peak_memory_bytes", "epochs", "parameters")


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
    columns.append(text_column("split", lambda r: r.split))
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
