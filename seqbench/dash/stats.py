"""The latest numbers of the runs on screen, one row each, fitted to the width available.

The row's mark has the colour of the run's curves and its list entry. With two runs on screen
each row also names its run, as the chart legends do (`names.name_levels`: at 80 columns
`ce`/`cce`, wider `ce[torch] s0`), so the rows are told apart without colour; a lone run gets
its name, and every run its status word, where they fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from seqbench.dash.charts import LEGEND_MARK, compact_number
from seqbench.dash.names import name_levels
from seqbench.dash.run_list import status_glyph
from seqbench.dash.runs_model import TrackedRun
from seqbench.report.format import format_metric

MEMORY_KINDS = {"cuda-allocated": "GPU", "cpu-rss": "CPU RSS"}
ROW_PREFIX = 4  # colour mark, status glyph, two spaces


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
    """One column: its header, how to get a row's text, and whether it is left-aligned."""

    header: str
    value: Callable[[TrackedRun], str]
    left: bool = False


def _number_columns(memory_header: str) -> list[Column]:
    def latest(name: str, fmt: Callable[[float | None], str]) -> Callable[[TrackedRun], str]:
        return lambda run: fmt(_latest(getattr(run.series, name)))

    def number(value: float | None) -> str:
        return "-" if value is None else compact_number(value)

    return [
        Column("ep", lambda run: f"{run.series.epochs[-1]:.0f}" if run.series.epochs else "-"),
        Column("loss", latest("train_loss", number)),
        Column("HR@10", latest("hr10", format_metric)),
        Column("NDCG@10", latest("ndcg10", format_metric)),
        Column(memory_header, latest("peak_memory_bytes", format_size)),
        Column("s/ep", latest("epoch_seconds", format_seconds)),
        Column("seq/s", latest("sequences_per_second", number)),
    ]


def _name_column(names: dict[str, str]) -> Column:
    return Column("run", lambda run: names[run.run_id], left=True)


STATUS_COLUMN = Column("status", lambda run: run.status, left=True)


def _choose_columns(runs: Sequence[TrackedRun], memory_header: str,
                    width: int) -> list[Column]:
    """The columns that fit `width`, in display order: name, status, numbers.

    Two or more runs: a name column is a must (the most detailed names that fit, dropping
    seq/s before the names get too short to fit), then the status where it fits. A lone run:
    all numbers, then the status and its name where they fit.
    """
    numbers = _number_columns(memory_header)
    levels = name_levels(runs)
    name_columns = [_name_column({run.run_id: names[level] for run, names in
                                  zip(runs, levels, strict=True)})
                    for level in range(len(levels[0]))]

    def fits(columns: list[Column]) -> bool:
        widths = [max(cell_len(c.header), *(cell_len(c.value(run)) for run in runs))
                  for c in columns]
        return ROW_PREFIX + sum(widths) + len(widths) - 1 <= width

    if len(runs) > 1:
        candidates = [(name, numbers) for name in name_columns]
        candidates += [(name, numbers[:-1]) for name in name_columns]
        name, numbers = next(((n, shown) for n, shown in candidates if fits([n, *shown])),
                             (name_columns[-1], numbers))
        status = [STATUS_COLUMN] if fits([name, STATUS_COLUMN, *numbers]) else []
        return [name, *status, *numbers]
    status = [STATUS_COLUMN] if fits([STATUS_COLUMN, *numbers]) else []
    named = [name_columns[0]] if fits([name_columns[0], *status, *numbers]) else []
    return [*named, *status, *numbers]


def stats_lines(runs: Sequence[tuple[TrackedRun, str]], width: int) -> list[Text]:
    """A header and a row per (run, colour), each row naming its run where two are shown."""
    if not runs or width <= 0:
        return []
    tracked = [run for run, _ in runs]
    chosen = _choose_columns(tracked, memory_label({run.memory_kind for run in tracked}), width)
    cells = [[c.value(run) for run in tracked] for c in chosen]
    widths = [max(cell_len(c.header), *(cell_len(v) for v in values))
              for c, values in zip(chosen, cells, strict=True)]

    def cell(index: int, text: str) -> str:
        size = widths[index]
        return text.ljust(size) if chosen[index].left else text.rjust(size)

    header = Text(" " * ROW_PREFIX + " ".join(cell(i, c.header) for i, c in enumerate(chosen)),
                  style="grey62")
    lines = [header]
    for row, (run, colour) in enumerate(runs):
        glyph, style = status_glyph(run.status)
        line = Text()
        line.append(LEGEND_MARK, style=colour)
        line.append(glyph, style=style)
        line.append("  ")
        line.append(" ".join(cell(i, cells[i][row]) for i in range(len(chosen))))
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
