"""Rich tables for finished runs: one run's metrics (and where it is), and several runs side by
side."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from seqbench.report.format import PartsLine, format_bytes, format_metric

HEADLINE = ("HR@10", "NDCG@10", "Coverage@10", "Surprisal@10")


def _split(summary: dict[str, Any]) -> str:
    """The split a summary's metrics are on (0.1.0 summaries: all leave-one-out)."""
    return {"loo": "leave-one-out"}.get(summary.get("split") or "loo", summary.get("split"))


def _stop_note(summary: dict[str, Any]) -> str:
    reason = summary.get("stop_reason", "epochs")
    return {"patience": " (early stop)", "time-limit": " (time limit)"}.get(reason, "")


def run_table(summary: dict[str, Any]) -> Group:
    """One finished run: its test metrics, its costs, and `run: <path>` on a line of its own.

    The path line is never wrapped at the table's width; only a path wider than the whole
    console is folded (not cut) onto the next lines, which `print_run` avoids altogether."""
    path_line = Text(f"run: {summary['path']}", overflow="fold")
    return Group(_metrics_table(summary), _cost_line(summary), path_line)


def print_run(console: Console, summary: dict[str, Any]) -> None:
    """Print `run_table` with the path soft-wrapped: one line of text, however narrow the
    terminal (which then wraps it for the eye, and a copy still gets the whole path)."""
    console.print(Group(_metrics_table(summary), _cost_line(summary)))
    # plain Text (a path is not markup) with no overflow of its own: soft_wrap's "ignore" holds
    console.print(Text(f"run: {summary['path']}"), soft_wrap=True, highlight=False)


def _metrics_table(summary: dict[str, Any]) -> Table:
    """Test metrics of one run next to the most-popular baseline, protocol in every header."""
    title = escape(f"{summary['dataset']} · {summary['model']} · {summary['loss_backend']} · "
             f"seed {summary['seed']} — test ({_split(summary)} split), best epoch "
             f"{summary['best_epoch']} of {summary['epochs_run']}{_stop_note(summary)}")
    table = Table(title=title, title_justify="left")
    table.add_column("metric", style="bold")
    baseline = summary.get("baseline", {}).get("test", {})
    for protocol in summary["test"]:
        table.add_column(f"{summary['model']} ({protocol})", justify="right")
        if protocol in baseline:
            table.add_column(f"most-popular ({protocol})", justify="right", style="dim")
    metrics = list(dict.fromkeys(m for values in summary["test"].values() for m in values))
    for metric in metrics:
        row = [metric]
        for protocol, values in summary["test"].items():
            row.append(format_metric(values.get(metric)))
            if protocol in baseline:
                row.append(format_metric(baseline[protocol].get(metric)))
        table.add_row(*row)
    return table


def _cost_line(summary: dict[str, Any]) -> PartsLine:
    """What the table's caption said, at the console's width and broken only between parts."""
    parts = [f"peak memory {format_bytes(summary['peak_memory_bytes'])} "
             f"({summary['memory_kind']})",
             f"mean epoch {summary['mean_epoch_seconds']:.2f} s",
             f"{summary['sequences_per_second']:,.0f} seq/s",
             f"{summary['parameters']:,} parameters", str(summary["device"])]
    return PartsLine([Text(part) for part in parts], separator=" · ", indent=0,
                     style="table.caption")


def runs_table(summaries: list[dict[str, Any]]) -> Table:
    """Several runs (e.g. `--loss ce,cce --seed 1,2,3`) in one table, test metrics."""
    protocol = next(iter(summaries[0]["test"]))
    table = Table(title=f"{summaries[0]['dataset']} — test metrics ({protocol} ranking, "
                  f"{_split(summaries[0])} split)", title_justify="left")
    for column in ("loss", "seed", *HEADLINE, "peak memory", "epoch s", "epochs"):
        table.add_column(column, justify="left" if column == "loss" else "right")
    for summary in summaries:
        metrics = summary["test"][protocol]
        table.add_row(escape(summary["loss_backend"]), str(summary["seed"]),
                      *(format_metric(metrics.get(m)) for m in HEADLINE),
                      f"{format_bytes(summary['peak_memory_bytes'])} ({summary['memory_kind']})",
                      f"{summary['mean_epoch_seconds']:.2f}", str(summary["epochs_run"]))
    return table
