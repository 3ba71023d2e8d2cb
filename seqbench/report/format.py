"""Small formatting helpers shared by the tables and the training output."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text


def format_bytes(count: int | float | None) -> str:
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.2f} {unit}"
        count /= 1024
    return f"{count:.2f} GiB"  # pragma: no cover


def format_metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class PartsLine:
    """Parts of one line (`loss 8.1234`, `peak 9.10 GiB (cuda-allocated)`) that break onto an
    indented next line only between parts, so a number never leaves its name or unit.

    Rich word-wraps at any space (a non-breaking one too), which splits `9.10` from `GiB`; this
    lays the parts out for the width it is rendered at. A part wider than a whole line is the
    only thing that still wraps.
    """

    def __init__(self, parts: Sequence[str | Text], *, separator: str = "  ", indent: int = 4,
                 style: str = "") -> None:
        self.parts = [Text.from_markup(p) if isinstance(p, str) else p for p in parts]
        self.separator = separator
        self.indent = indent
        self.style = style

    def lines(self, width: int) -> list[Text]:
        """The parts packed into lines of at most `width` cells (where each part fits)."""
        lines: list[Text] = []
        line: Text | None = None
        for part in self.parts:
            if line is not None and line.cell_len + len(self.separator) + part.cell_len <= width:
                line.append(self.separator)
                line.append_text(part)
                continue
            if line is not None:
                lines.append(line)
            line = Text(" " * self.indent if lines else "")
            line.append_text(part)
        if line is not None:
            lines.append(line)
        return lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text("\n", style=self.style).join(self.lines(options.max_width))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((part.cell_len for part in self.parts), default=0)
        whole = sum(part.cell_len for part in self.parts) + len(self.separator) * max(
            len(self.parts) - 1, 0)
        return Measurement(min(widest + self.indent, whole), whole)
