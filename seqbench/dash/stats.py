"""The latest numbers of the runs on screen, one row each, fitted to the width available.

At 80 columns only the numbers fit (the row's mark has the colour of the run's curves and its
list entry); wider terminals add the run's name and status word.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from seqbench.dash.charts import LEGEND_MARK, compact_number
from seqbench.dash.run_list import status_glyph
from seqbench.dash.runs_model import TrackedRun
from seqbench.report.format import format_metric

MEMORY_KINDS = {"cuda-allocated": "GPU", "cpu-rss": "CPU RSS"}


def memory_label(kinds: set[str | None]) -> str:
    """What peak memory means for these runs: GPU (CUDA-allocated) or CPU RSS."""
    names = {MEMORY_KINDS.get(kind or "", "memory") for kind in kinds}
    return names.pop() if len(names) == 1 else "memory"


def format_size(count: float | None) -> str:
    """Bytes in MiB or GiB, short: "378 MiB", "1.23 GiB"."""
    if count is None:
        return "-"
    mib = count / 2**20
    if mib >= 1024:
        return f"{mib / 1024:.2f} GiB"
    return f"{mib:.0f} MiB" if mib >= 10 else f"{mib:.1f} MiB"


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.2f}" if seconds < 10 else f"{seconds:.1f}" if seconds < 100 else \
        f"{seconds:.0f}"


def _latest(values: list[float | None]) -> float | None:
    """The last epoch's value (None if that epoch did not record one)."""
    return values[-1] if values else None


@dataclass(frozen=True)
class Column:
    """One column: its header, how to get a row's text, and whether it can be left out."""

    header: str
    value: Callable[[TrackedRun], str]
    optional: bool = False
    left: bool = False


def _columns(memory_header: str) -> list[Column]:
    def latest(name: str, fmt: Callable[[float | None], str]) -> Callable[[TrackedRun], str]:
        return lambda run: fmt(_latest(getattr(run.series, name)))

    def number(value: float | None) -> str:
        return "-" if value is None else compact_number(value)

    return [
        Column("run", lambda run: run.short_name(), optional=True, left=True),
        Column("status", lambda run: run.status, optional=True, left=True),
        Column("ep", lambda run: f"{run.series.epochs[-1]:.0f}" if run.series.epochs else "-"),
        Column("loss", latest("train_loss", number)),
        Column("HR@10", latest("hr10", format_metric)),
        Column("NDCG@10", latest("ndcg10", format_metric)),
        Column(memory_header, latest("peak_memory_bytes", format_size)),
        Column("s/ep", latest("epoch_seconds", format_seconds)),
        Column("seq/s", latest("sequences_per_second", number)),
    ]


def stats_lines(runs: Sequence[tuple[TrackedRun, str]], width: int) -> list[Text]:
    """A header and a row per (run, colour), using the optional columns only where they fit."""
    if not runs or width <= 0:
        return []
    columns = _columns(memory_label({run.memory_kind for run, _ in runs}))
    cells = {id(c): [c.value(run) for run, _ in runs] for c in columns}
    widths = {id(c): max(cell_len(c.header), *(cell_len(v) for v in cells[id(c)]))
              for c in columns}
    prefix = 4  # colour mark, status glyph, two spaces

    def total(chosen: list[Column]) -> int:
        return prefix + sum(widths[id(c)] for c in chosen) + len(chosen) - 1

    chosen = [c for c in columns if not c.optional]
    for optional in (c for c in reversed(columns) if c.optional):
        if total([*chosen, optional]) <= width:
            chosen.append(optional)
    chosen.sort(key=columns.index)

    def cell(column: Column, text: str) -> str:
        size = widths[id(column)]
        return text.ljust(size) if column.left else text.rjust(size)

    header = Text(" " * prefix + " ".join(cell(c, c.header) for c in chosen), style="grey62")
    lines = [header]
    for row, (run, colour) in enumerate(runs):
        glyph, style = status_glyph(run.status)
        line = Text()
        line.append(LEGEND_MARK, style=colour)
        line.append(glyph, style=style)
        line.append("  ")
        line.append(" ".join(cell(c, cells[id(c)][row]) for c in chosen))
        lines.append(line)
        if run.status == "failed" and run.error:
            lines.append(Text(f"   {run.short_name()}: {run.error}", style="red"))
    for line in lines:
        line.truncate(width, overflow="ellipsis")
    return lines


class StatsPanel(Widget):
    """The latest numbers of the runs on screen; the app calls `show` when they change."""

    DEFAULT_CSS = """
    StatsPanel {
        height: auto;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.runs: tuple[tuple[TrackedRun, str], ...] = ()

    def show(self, runs: Sequence[tuple[TrackedRun, str]]) -> None:
        self.runs = tuple(runs)
        self.refresh(layout=True)

    def render(self) -> Text:
        return Text("\n").join(stats_lines(self.runs, self.content_size.width))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(stats_lines(self.runs, width))
