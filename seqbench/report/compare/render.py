"""The report as output: Rich tables that fit the terminal, markdown, csv and json."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from seqbench.report.compare.report import Column, Report, _text

_STATUS_STYLES = {"finished": "green", "failed": "bold red", "interrupted": "yellow",
                  "running": "cyan", "unknown": "dim"}


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
