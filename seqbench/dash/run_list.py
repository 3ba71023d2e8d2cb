"""The list of runs on the dashboard's left: status, start time and label, updated in place.

An OptionList renders only the rows on screen and caches each prompt, so hundreds of runs cost
little as long as prompts are replaced only when what they show changes (status, mark, width),
not on every poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from rich.cells import cell_len
from rich.text import Text
from textual import events
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from seqbench.dash.runs_model import TrackedRun

STATUS_STYLES = {
    "running": ("●", "bold green"),
    "finished": ("✔", "cyan"),
    "failed": ("✘", "bold red"),
    "interrupted": ("■", "yellow"),
    "unknown": ("?", "grey62"),
}
MARK = "◆"
_FALLBACK_WIDTH = 27
_SEPARATOR = " · "


def status_glyph(status: str) -> tuple[str, str]:
    """The glyph and style that show a status."""
    return STATUS_STYLES.get(status, STATUS_STYLES["unknown"])


def pack(parts: Sequence[str], width: int) -> list[str]:
    """Join parts with " · " into lines of at most `width` cells, breaking only between parts.

    Rich would break "ce[torch] · s0" at any space and leave a lone "·" at a line start.
    """
    lines: list[str] = []
    for part in parts:
        if lines and cell_len(lines[-1]) + cell_len(_SEPARATOR) + cell_len(part) <= width:
            lines[-1] += _SEPARATOR + part
        else:
            lines.append(part)
    return lines


def run_prompt(run: TrackedRun, width: int, mark_colour: str | None,
               tz: tzinfo | None = None) -> Text:
    """A run's entry: a mark, its status and start time, then dataset · model · backend · seed."""
    glyph, style = status_glyph(run.status)
    prompt = Text()
    prompt.append(MARK if mark_colour else " ", style=mark_colour or "")
    prompt.append(glyph, style=style)
    head = pack([run.status, run.start_text(tz)], max(1, width - 3))
    prompt.append(" ")
    prompt.append(run.status, style=style)
    prompt.append(head[0][len(run.status):], style="grey62")
    for line in head[1:] + pack(run.label_parts(), max(1, width - 3)):
        prompt.append("\n   " + line)
    return prompt


class RunList(OptionList):
    """Runs oldest first, one option per run, its id the run id."""

    def __init__(self, *, tz: tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self.tz = tz
        self._runs: dict[str, TrackedRun] = {}
        self._marks: dict[str, str] = {}
        self._shown_key: dict[str, tuple] = {}  # what each prompt was built from
        self._width = 0
        self.chosen_by_user = False  # until then the app follows the newest running run

    @property
    def highlighted_id(self) -> str | None:
        # Not `highlighted_option`: Textual has it only from 6.0, and 2.0.4 up is supported.
        if self.highlighted is None:
            return None
        return self.get_option_at_index(self.highlighted).id

    def prompt_width(self) -> int:
        width = self.scrollable_content_region.width
        return width if width > 0 else _FALLBACK_WIDTH

    def _key(self, run: TrackedRun) -> tuple:
        return (run.status, self._marks.get(run.run_id), self.prompt_width())

    def _option(self, run: TrackedRun) -> Option:
        self._shown_key[run.run_id] = self._key(run)
        return Option(run_prompt(run, self.prompt_width(), self._marks.get(run.run_id),
                                 self.tz), id=run.run_id)

    def sync(self, runs: Sequence[TrackedRun]) -> None:
        """Show exactly these runs in this order, keeping the highlighted run highlighted.

        New runs usually sort last and are appended; otherwise the options are rebuilt.
        """
        ids = [run.run_id for run in runs]
        current = [option.id for option in self.options]
        self._runs = {run.run_id: run for run in runs}
        if ids[:len(current)] == current:
            self.add_options(self._option(run) for run in runs[len(current):])
            return
        keep = self.highlighted_id
        self.set_options(self._option(run) for run in runs)
        if keep in self._runs:
            self.highlighted = ids.index(keep)

    def update_run(self, run: TrackedRun) -> None:
        """Redraw a run's prompt if what it shows changed."""
        if run.run_id in self._runs and self._shown_key.get(run.run_id) != self._key(run):
            self.replace_option_prompt(run.run_id, self._option(run).prompt)

    def set_marks(self, marks: dict[str, str]) -> None:
        """Mark these runs (run id -> colour of their curves)."""
        changed = set(marks.items()) ^ set(self._marks.items())
        self._marks = dict(marks)
        for run_id in {run_id for run_id, _ in changed}:
            if run_id in self._runs:
                self.update_run(self._runs[run_id])

    def action_cursor_up(self) -> None:
        self.chosen_by_user = True
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self.chosen_by_user = True
        super().action_cursor_down()

    def action_first(self) -> None:
        self.chosen_by_user = True
        super().action_first()

    def action_last(self) -> None:
        self.chosen_by_user = True
        super().action_last()

    def action_page_up(self) -> None:
        self.chosen_by_user = True
        super().action_page_up()

    def action_page_down(self) -> None:
        self.chosen_by_user = True
        super().action_page_down()

    async def _on_click(self, event: events.Click) -> None:
        self.chosen_by_user = True
        await super()._on_click(event)

    def on_resize(self, event: events.Resize) -> None:
        """Re-pack every prompt for the new width (OptionList only re-wraps them)."""
        if self.prompt_width() != self._width:
            self._width = self.prompt_width()
            for run in self._runs.values():
                self.update_run(run)
