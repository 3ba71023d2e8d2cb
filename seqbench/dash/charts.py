"""Braille line charts, rendered as Rich Text, for the dashboard's live curves.

Textual's Sparkline cannot overlay two runs, so the dashboard draws its own: every terminal
cell holds a 2x4 grid of braille dots, four times the vertical resolution of block
characters. Curves are first reduced to one mean per dot column, so a run with thousands of
epochs costs no more to draw than one with fifty. The y axis is labelled at its top and bottom,
the epoch axis under the plot at its first and last epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget

BRAILLE_BASE = 0x2800
# The bit of the dot at (column, row) of a cell, in Unicode's braille numbering.
_DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
LEGEND_MARK = "━"
AXIS_STYLE = "grey50"

ValueFormat = Callable[[float], str]


def compact_number(value: float) -> str:
    """A number in at most 6 characters, so axis labels leave room for the plot."""
    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    if value == 0:
        return "0"
    if size >= 1e6:
        return f"{value / 1e6:.1f}M"
    if size >= 1e4:
        return f"{value / 1e3:.1f}k"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    if size >= 1e-3:
        return f"{value:.4f}"
    return f"{value:.0e}"


@dataclass(frozen=True)
class ChartSeries:
    """One curve: its points in x order, the name its legend shows and its colour.

    `shorter` are shorter names for narrow charts, most detailed first; the app makes them so
    that two curves drawn together differ at every level (`names.name_levels`).
    """

    name: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    colour: str
    shorter: tuple[str, ...] = ()

    @property
    def last(self) -> float | None:
        return self.ys[-1] if self.ys else None

    def name_at(self, level: int) -> str:
        """The name at `level` of detail (0: `name`); the shortest one past the last level."""
        names = (self.name, *self.shorter)
        return names[min(level, len(names) - 1)]


def finite_points(xs: Sequence[float], ys: Sequence[float | None]) -> tuple[tuple, tuple]:
    """The (xs, ys) pairs whose y is a finite number: a diverged NaN loss must not break a plot."""
    kept = [(x, y) for x, y in zip(xs, ys, strict=True)
            if y is not None and math.isfinite(y) and math.isfinite(x)]
    return tuple(x for x, _ in kept), tuple(y for _, y in kept)


def bucket_means(xs: Sequence[float], ys: Sequence[float], buckets: int, x_min: float,
                 x_max: float) -> list[tuple[int, float]]:
    """The mean y of the points in each of `buckets` equal slices of [x_min, x_max].

    Returns (bucket, mean) for the non-empty buckets, in order. This is what keeps drawing
    cost tied to the widget's width rather than to the number of epochs.
    """
    if buckets <= 0 or not xs:
        return []
    span = x_max - x_min
    sums = [0.0] * buckets
    counts = [0] * buckets
    for x, y in zip(xs, ys, strict=True):
        index = 0 if span <= 0 else min(buckets - 1, max(0, int((x - x_min) / span * buckets)))
        sums[index] += y
        counts[index] += 1
    return [(i, sums[i] / counts[i]) for i in range(buckets) if counts[i]]


def epoch_label(x: float) -> str:
    """An epoch for the x axis: whole epochs without a decimal point, others short."""
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def _legend(series: Sequence[ChartSeries], value_format: ValueFormat, level: int | None,
            compact: bool = False) -> list[tuple[str, str]]:
    """(text, colour) per legend entry: the mark, the name at `level` (None: no name) and the
    last value; `compact` leaves out the space after the mark."""
    entries = []
    for one in series:
        value = "-" if one.last is None else value_format(one.last)
        if level is None:
            text = f"{LEGEND_MARK}{value}"
        else:
            text = f"{LEGEND_MARK}{'' if compact else ' '}{one.name_at(level)} {value}"
        entries.append((text, one.colour))
    return entries


def _entries_width(entries: list[tuple[str, str]]) -> int:
    return sum(cell_len(text) for text, _ in entries) + max(0, len(entries) - 1)


def _append_entries(line: Text, entries: list[tuple[str, str]]) -> None:
    for i, (text, colour) in enumerate(entries):
        if i:
            line.append(" ")
        line.append(text, style=colour)


def _header(titles: Sequence[str], series: Sequence[ChartSeries], value_format: ValueFormat,
            width: int, title_style: str) -> tuple[Text, Text | None]:
    """The title line, with the legend on it where it fits; else the legend for a bottom line.

    Two curves must be told apart without their colours (a black-and-white screenshot, a
    colour-blind reader), so their legend names them: it takes the most detailed names that
    fit beside some title, else gets a line of its own below the plot, and drops the names
    only where even the shortest do not fit there. One curve needs no name: the longest
    title wins, and the name shows where it still fits.
    """
    levels = max((len(one.shorter) + 1 for one in series), default=1)
    named = [_legend(series, value_format, level, compact)
             for level in range(levels) for compact in (False, True)]
    values_only = _legend(series, value_format, None)
    if len(series) > 1:
        on_title_line = [(title, entries) for entries in named for title in titles]
    else:
        on_title_line = [(title, entries) for title in titles for entries in
                         [*named, values_only]]
    for title, entries in on_title_line:
        needed = cell_len(title) + (1 + _entries_width(entries) if entries else 0)
        if needed <= width:
            line = Text(title, style=title_style)
            if entries:
                line.append(" " * (width - needed + 1))
                _append_entries(line, entries)
            return line, None
    title = next((t for t in titles if cell_len(t) <= width), titles[-1] if titles else "")
    line = Text(title, style=title_style)
    line.truncate(width, overflow="ellipsis")
    if not series:
        return line, None
    bottom = Text()
    for entries in [*named, values_only]:
        if _entries_width(entries) <= width:
            _append_entries(bottom, entries)
            return line, bottom
    _append_entries(bottom, values_only)
    bottom.truncate(width, overflow="ellipsis")
    return line, bottom


def render_chart(series: Sequence[ChartSeries], width: int, height: int, *,
                 titles: Sequence[str] = ("",), value_format: ValueFormat = compact_number,
                 empty_message: str = "no data yet", title_style: str = "bold") -> Text:
    """A `height` x `width` chart: a title line with a legend, braille curves with y labels,
    and under them the epoch axis (`ep 1 ... ep 63`).

    The y axis spans the smallest and largest value of all series (labelled at its top and
    bottom row); the x axis spans their smallest and largest x (labelled at its ends). The
    legend shows each series' last value in its colour, with its name where the width allows
    (always, where two series share the chart and a name fits). Where two series share a cell
    the one drawn last gives it its colour. Short of rows, the epoch axis goes first, then a
    legend line of its own.
    """
    width, height = max(0, width), max(0, height)
    if width == 0 or height == 0:
        return Text()
    series = [one for one in series if one.xs]
    header, bottom = _header(titles, series, value_format, width, title_style)
    axis_rows = 1 if series else 0
    plot_rows = height - 1 - (bottom is not None) - axis_rows
    if plot_rows < 1 and axis_rows:
        axis_rows, plot_rows = 0, plot_rows + 1
    if plot_rows < 1 and bottom is not None:  # no room for a bottom legend: keep only the title
        bottom, plot_rows = None, height - 1
    lines = [header]
    if plot_rows >= 1:
        lines += _plot(series, width, plot_rows, value_format, empty_message,
                       x_axis=bool(axis_rows))
    if bottom is not None:
        lines.append(bottom)
    return Text("\n").join(lines[:height])


def _plot(series: Sequence[ChartSeries], width: int, rows: int, value_format: ValueFormat,
          empty_message: str, *, x_axis: bool = False) -> list[Text]:
    """The plot rows: y labels on the left (max at the top, min at the bottom), curves right;
    with `x_axis`, one more row under them: the first and last epoch at the plot's ends."""
    if not series:
        blank = [Text(" " * width) for _ in range(rows)]
        message = Text(empty_message, style="italic " + AXIS_STYLE)
        message.truncate(width, overflow="ellipsis")
        message.align("center", width)
        blank[(rows - 1) // 2] = message
        return blank
    y_min = min(min(one.ys) for one in series)
    y_max = max(max(one.ys) for one in series)
    x_min = min(one.xs[0] for one in series)
    x_max = max(one.xs[-1] for one in series)
    top_label, bottom_label = value_format(y_max), value_format(y_min)
    label_width = max(cell_len(top_label), cell_len(bottom_label))
    if rows == 1:
        top_label = bottom_label = ""
        label_width = 0
    columns = width - label_width - 1
    if columns < 1:
        return [Text(" " * width) for _ in range(rows + x_axis)]
    bits, owners = _rasterise(series, columns, rows, x_min, x_max, y_min, y_max)
    lines = []
    for row in range(rows):
        label = top_label if row == 0 else bottom_label if row == rows - 1 else ""
        axis = "┤" if label else "│"
        line = Text(label.rjust(label_width) + axis, style=AXIS_STYLE)
        _append_cells(line, bits[row], owners[row], series)
        lines.append(line)
    if x_axis:
        lines.append(Text(" " * label_width + "└" + _x_labels(x_min, x_max, columns),
                          style=AXIS_STYLE))
    return lines


def _x_labels(x_min: float, x_max: float, columns: int) -> str:
    """`columns` cells of x axis: the first epoch under the first plot column, the last under
    the last (where only one epoch is drawn, its dot and label are at the start)."""
    first, last = epoch_label(x_min), epoch_label(x_max)
    if x_max > x_min:
        choices = [(f"ep {first}", f"ep {last}"), (first, f"ep {last}"), (first, last),
                   ("", f"ep {last}"), ("", last)]
    else:
        choices = [(f"ep {first}", ""), (first, "")]
    for left, right in choices:
        gap = columns - cell_len(left) - cell_len(right)
        if gap >= (1 if left and right else 0):
            return left + "─" * gap + right
    return "─" * columns


def _rasterise(series: Sequence[ChartSeries], columns: int, rows: int, x_min: float,
               x_max: float, y_min: float, y_max: float) -> tuple[list[list[int]],
                                                                  list[list[int]]]:
    """Dot bits per cell and the index of the series that last drew in it (-1: none)."""
    dots_wide, dots_high = columns * 2, rows * 4
    bits = [[0] * columns for _ in range(rows)]
    owners = [[-1] * columns for _ in range(rows)]
    y_span = y_max - y_min

    def dot_row(y: float) -> int:
        if y_span <= 0:
            return (dots_high - 1) // 2
        return round((y_max - y) / y_span * (dots_high - 1))

    for index, one in enumerate(series):
        points = bucket_means(one.xs, one.ys, dots_wide, x_min, x_max)
        previous: tuple[int, int] | None = None
        for column, mean in points:
            row = dot_row(mean)
            if previous is None:
                _set_dot(bits, owners, column, row, index)
            else:
                _line(bits, owners, previous, (column, row), index)
            previous = (column, row)
    return bits, owners


def _line(bits: list[list[int]], owners: list[list[int]], start: tuple[int, int],
          end: tuple[int, int], owner: int) -> None:
    """Join two dots: interpolate across the columns between them, filling each column's
    vertical run so that steep segments stay connected."""
    (x0, y0), (x1, y1) = start, end
    last_row = y0
    for x in range(x0 + 1, x1 + 1):
        row = round(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
        step = 1 if row >= last_row else -1
        first = row if row == last_row else last_row + step
        for y in range(first, row + step, step):
            _set_dot(bits, owners, x, y, owner)
        last_row = row


def _set_dot(bits: list[list[int]], owners: list[list[int]], x: int, y: int,
             owner: int) -> None:
    cell_row, cell_column = y // 4, x // 2
    bits[cell_row][cell_column] |= _DOT_BITS[x % 2][y % 4]
    owners[cell_row][cell_column] = owner


def _append_cells(line: Text, bits: list[int], owners: list[int],
                  series: Sequence[ChartSeries]) -> None:
    """Append one row of braille cells, one span per run of cells of the same colour."""
    start = 0
    for end in range(1, len(bits) + 1):
        if end == len(bits) or owners[end] != owners[start]:
            chars = "".join(chr(BRAILLE_BASE + b) if b else " " for b in bits[start:end])
            owner = owners[start]
            line.append(chars, style=series[owner].colour if owner >= 0 else "")
            start = end


class LineChart(Widget, can_focus=True):
    """A live chart of up to two series; it redraws only when its data or its size change."""

    DEFAULT_CSS = """
    LineChart {
        height: 1fr;
        width: 1fr;
    }
    """

    def __init__(self, titles: Sequence[str], *, value_format: ValueFormat = compact_number,
                 empty_message: str = "no data yet", id: str | None = None) -> None:
        super().__init__(id=id)
        self.titles: tuple[str, ...] = tuple(titles)
        self.series: tuple[ChartSeries, ...] = ()
        self.value_format = value_format
        self.empty_message = empty_message
        self._version = 0
        self._cache: tuple[tuple, Text] | None = None

    def set_data(self, series: Sequence[ChartSeries], *, titles: Sequence[str] | None = None,
                 empty_message: str | None = None,
                 value_format: ValueFormat | None = None) -> None:
        """Show these series (at most two are legible); a no-op when nothing changed."""
        new = (tuple(series), tuple(titles) if titles is not None else self.titles,
               empty_message if empty_message is not None else self.empty_message,
               value_format or self.value_format)
        if new == (self.series, self.titles, self.empty_message, self.value_format):
            return
        self.series, self.titles, self.empty_message, self.value_format = new
        self._version += 1
        self.refresh()

    def render(self) -> Text:
        size = self.content_size
        key = (size.width, size.height, self._version, self.has_focus)
        if self._cache is None or self._cache[0] != key:
            text = render_chart(self.series, size.width, size.height, titles=self.titles,
                                value_format=self.value_format,
                                empty_message=self.empty_message,
                                title_style="bold reverse" if self.has_focus else "bold")
            self._cache = (key, text)
        return self._cache[1]

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
