"""`seqbench compare`: recorded runs side by side, from their files alone.

One row per run and protocol (or per group of runs, as mean ± sample std), with the numbers the
reference experiment reports: dataset | loss | metrics | memory | time. Runs that failed or are
still going are listed with their status rather than dropped, so a table never silently hides
an experiment. The same rows export as markdown, csv or json, and as PNG charts (`--plot`).

This module is the command; each step lives in its own module: facts (what a run says), rows
(grouping and statistics), baseline (reference values), report (columns and cells), render.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from seqbench.errors import SeqbenchError
from seqbench.report.compare.baseline import BaselineRefs, check_baseline
from seqbench.report.compare.facts import (
    PRETRAIN_LOSS,
    PRETRAIN_MODEL,
    RunFacts,
    run_facts,
    select_runs,
)
from seqbench.report.compare.options import CompareOptions
from seqbench.report.compare.render import render_csv, render_json, render_markdown, render_tables
from seqbench.report.compare.report import Column, Report, build_report
from seqbench.report.compare.rows import Row, Stat, build_rows, rank_order, summarize
from seqbench.report.run_table import HEADLINE

__all__ = [  # what other code imports from here, and the names each step makes public
    "FORMATS", "GROUP_FIELDS", "PRETRAIN_LOSS", "PRETRAIN_MODEL", "BaselineRefs", "Column",
    "CompareOptions", "Report", "Row", "RunFacts", "Stat", "build_report",
    "build_rows", "check_baseline", "compare_command", "rank_order", "render_csv", "render_json",
    "render_markdown", "render_tables", "run_facts", "select_runs", "summarize",
]

log = logging.getLogger(__name__)

FORMATS = ("table", "markdown", "csv", "json")
GROUP_FIELDS = ("dataset", "model", "loss", "backend", "protocol", "seed", "variant", "status",
                "device", "memory_kind")


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
    if options.plot_dir is not None:  # before the table: not a whole table, then the error
        from seqbench.report.plots import require_matplotlib

        require_matplotlib()
    if not options.runs and not Path(options.runs_dir).exists():
        raise SeqbenchError(f"runs directory {options.runs_dir} does not exist")

    facts, source = select_runs(options)
    if not facts:
        _say_no_runs(options, console, output_format)
        return
    metrics = _check_metrics(options, facts)
    _check_protocols(options, facts)
    if options.baseline:
        check_baseline(options.baseline, facts)
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
