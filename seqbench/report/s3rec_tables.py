"""Rich tables for S3Rec: the parameter account, a pretraining run, and a rank sweep."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from seqbench.report.format import format_bytes, format_metric


def _percent(change: float) -> str:
    return f"{change * 100:+.2f}%"


def _with_note(table: Table, note: str) -> Group:
    """The table and a note under it. Not the table's caption: Rich wraps a caption to the
    table's width, which breaks paths a user wants to copy."""
    return Group(table, Text(note, style="dim"))


def account_table(summary: dict[str, Any]) -> Group:
    """Per head: rank, matrix weights before/after, bias; then the whole model."""
    account = summary["parameter_account"]
    table = Table(title=f"Parameter account · {summary['variant']} (counted from the model)",
                  title_justify="left")
    for column in ("part", "rank", "full-rank", "as built", "change"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for head in account["heads"]:
        rank = "full" if head["rank"] is None else str(head["rank"])
        table.add_row(f"{head['task'].upper()} matrix W", rank, f"{head['full_rank_weights']:,}",
                      f"{head['weights']:,}", _percent(head["weight_reduction"]))
        table.add_row(f"{head['task'].upper()} head incl. bias", rank,
                      f"{head['full_rank_parameters']:,}", f"{head['parameters']:,}",
                      _percent(head["parameters"] / head["full_rank_parameters"] - 1))
    table.add_row("whole pretraining model", "", f"{account['total_full_rank']:,}",
                  f"{account['total']:,}", _percent(account["total_reduction"]), style="bold")
    return _with_note(table, f"encoder (kept for fine-tuning) {account['encoder']:,} · "
                      f"attribute embeddings {account['attribute_embeddings']:,}; the heads are "
                      f"dropped after pretraining, so the fine-tuned model is the same size "
                      f"either way")


def pretrain_table(summary: dict[str, Any]) -> Group:
    """Each task's loss in the first and the last epoch."""
    title = escape(f"{summary['dataset']} · S3Rec pretraining ({summary['variant']}) · seed "
                   f"{summary['seed']} — {summary['epochs_run']} epochs")
    table = Table(title=title, title_justify="left", min_width=len(title))  # title unwrapped
    for column in ("loss (per instance)", "first epoch", "last epoch"):
        table.add_column(column, justify="left" if column.startswith("loss") else "right")
    for name, last in summary["final_losses"].items():
        label = "total (weighted)" if name == "loss" else name.upper()
        table.add_row(label, format_metric(summary["first_losses"].get(name)),
                      format_metric(last))
    return _with_note(table, f"mean epoch {summary['mean_epoch_seconds']:.1f} s · "
                      f"{summary['sequences_per_second']:,.0f} instances/s · peak "
                      f"{format_bytes(summary['peak_memory_bytes'])} ({summary['memory_kind']}) · "
                      f"{summary['device']}")


def print_pretraining(console: Console, summary: dict[str, Any]) -> None:
    """A finished pretraining: its parameter account, its losses, and the checkpoint that
    `finetune --from` takes on a line of its own, never wrapped (a copy gets it whole)."""
    console.print(account_table(summary))
    console.print(pretrain_table(summary))
    console.print(Text(f"checkpoint: {summary['checkpoint']}"), soft_wrap=True, highlight=False)


def sweep_table(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> Table:
    """One row per pretraining variant: parameters and the fine-tuned test metrics, both
    protocols named."""
    protocols = list(rows[0][1]["test"])
    table = Table(title="S3Rec rank sweep — test, fine-tuned", title_justify="left")
    table.add_column("variant")
    table.add_column("seed", justify="right")
    table.add_column("pretrain params", justify="right")
    for protocol in protocols:
        for metric in ("HR@10", "NDCG@10"):
            table.add_column(f"{metric} ({protocol})", justify="right")
    for pre, tuned in rows:
        cells = [pre["variant"], str(pre["seed"]), f"{pre['parameters']:,}"]
        for protocol in protocols:
            values = tuned["test"].get(protocol, {})
            cells += [format_metric(values.get("HR@10")), format_metric(values.get("NDCG@10"))]
        table.add_row(*cells)
    return table
