"""Rows of the table: one per run and protocol, or one per group (mean ± sample std), in
reading order. Every output format and the charts share these statistics.
"""

from __future__ import annotations

import logging
import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from seqbench.report.compare.facts import RunFacts
from seqbench.report.compare.options import CompareOptions
from seqbench.runs.schema import number
from seqbench.vocabulary import variant_rank

log = logging.getLogger(__name__)

_DASH = "-"


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
        return summarize(number(getattr(run, quantity)) for run in self.runs)

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
            key += (protocol, run.split)  # never average over two protocols or splits
            groups.setdefault(key, Row([], protocol, grouped=True)).runs.append(run)
        rows = list(groups.values())
        _warn_repeated_seeds(rows)
    else:
        rows = [Row([run], protocol, grouped=False) for run, protocol in pairs]

    def order(row: Row) -> tuple[Any, ...]:
        first = row.runs[0]
        return (row.text(lambda r: r.dataset), row.text(lambda r: r.split),
                protocol_order.get(row.protocol, len(
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
    """r4 < r8 < r16 < r16-aap < full; runs without a variant first."""
    if variant is None:
        return (-1, "")
    rank = variant_rank(variant)
    return (rank if rank is not None else sys.maxsize, variant)
