"""`seqbench dash`: a live dashboard of the runs in a directory.

The app polls on a timer (`RunsWatcher` decides what is read), then updates only what changed:
a run's list entry when its status changes, the charts and numbers when a run on screen got new
epochs.

The charts show the highlighted run, or with the overlay on, the two marked runs (the CE vs CCE
view). The rule (also in the `?` help and the run list's bottom line): `space` marks or unmarks
the highlighted run (a third mark drops the first) and never switches the overlay; `o` switches
the overlay on and off, and only with two runs marked (else it says so); unmarking one of them
switches it off. The run list's bottom line says "overlay on" exactly while it is drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import tzinfo
from pathlib import Path

from rich.markup import escape
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Footer, OptionList, Static

from seqbench.dash.charts import ChartSeries, LineChart, finite_points
from seqbench.dash.names import name_levels
from seqbench.dash.run_list import RunList
from seqbench.dash.runs_model import RunsWatcher, TrackedRun
from seqbench.dash.stats import StatsPanel, memory_label

log = logging.getLogger(__name__)

SERIES_COLOURS = ("#4fc1ff", "#ffa657")  # the first and second run on screen
MAX_SHOWN = 2  # more curves than two in a 24-column chart are not legible
MAX_NOTIFICATIONS = 3  # per poll; the rest are counted in one more
NEED_TWO_MARKED = "Mark two runs (space) to overlay them"
HELP = """\
j/k ↑↓ pick the run to chart
space  mark or unmark it; two
       at most, a third drops
       the first
o      overlay the two marked
       runs, or back to one;
       needs two marked, and
       unmarking one ends it
tab    next pane
f      zoom a chart, or restore
r      reread now    q  quit"""  # lines of at most 36 cells: a toast is 40 wide at 80 columns


def empty_message(runs_dir: Path) -> str:
    """What to do when there is nothing to show yet (Textual markup, the path escaped)."""
    option = "" if runs_dir == Path("runs") else f" --runs-dir {escape(str(runs_dir))}"
    where = escape(str(runs_dir))
    state = "" if runs_dir.is_dir() else " (it does not exist yet; the first run creates it)"
    return (f"[b]No runs in {where} yet[/b]{state}.\n\n"
            f"Start one in another terminal:\n\n    [b]seqbench bench{option}[/b]\n\n"
            "This dashboard watches the directory: the run appears here as soon as it "
            "starts, and its epochs as they are written.")


class _CollectWarnings(logging.Handler):
    """Keeps warnings (e.g. a malformed events line) for the app to show as notifications:
    written to the terminal they would tear through the screen."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(self.format(record))
        except (TypeError, ValueError):  # a bad format string in a log call
            self.handleError(record)


class DashApp(App[None]):
    """Runs on the left, the charts and latest numbers of the selected run(s) on the right."""

    # Inline rather than a .tcss file, which a wheel built from pyproject.toml would leave out.
    # Runs on the left (about 30 columns at 80), charts and the latest numbers on the right.
    CSS = """
    #body {
        height: 1fr;
    }

    #runs {
        width: 3fr;
        min-width: 24;
        max-width: 48;
        height: 100%;
        max-height: 100%;
        border: round $panel-lighten-2;
        border-title-color: $text;
        border-subtitle-color: $text-muted;
        padding: 0;
        scrollbar-size-vertical: 1;
    }

    #runs:focus {
        border: round $accent;
    }

    #runs > .option-list--option {
        padding: 0;
    }

    #main {
        width: 5fr;
        height: 100%;
        padding: 0 0 0 1;
    }

    #empty {
        height: 1fr;
        padding: 1 2;
        content-align: center middle;
        color: $text;
    }

    #charts {
        height: 1fr;
        grid-size: 2 3;
        grid-gutter: 0 1;
    }

    #seconds {
        column-span: 2;
    }

    LineChart:focus {
        background: $boost;
    }

    #stats {
        height: auto;
    }
    """
    TITLE = "seqbench dash"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS = [  # noqa: RUF012 (Textual's convention)
        Binding("q", "quit", "Quit"),
        Binding("j", "next_run", "Run", key_display="j/k"),
        Binding("k", "previous_run", "Previous run", show=False),
        Binding("down", "next_run", "Next run", show=False),
        Binding("up", "previous_run", "Previous run", show=False),
        Binding("space", "mark", "Mark"),
        Binding("o", "overlay", "Overlay"),
        Binding("r", "refresh", "Refresh"),
        Binding("tab", "focus_next", "Pane", priority=True),
        Binding("shift+tab", "focus_previous", "Previous pane", show=False, priority=True),
        Binding("f", "zoom", "Zoom"),
        Binding("question_mark", "help", "Help", key_display="?"),
    ]

    def __init__(self, runs_dir: Path, poll_interval: float = 0.5, *,
                 relist_interval: float = 1.0, tz: tzinfo | None = None) -> None:
        """`tz` is for start times (default: local time; tests fix it)."""
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.poll_interval = poll_interval
        self.watcher = RunsWatcher(self.runs_dir, relist_interval=relist_interval)
        self.tz = tz
        self.marked: list[str] = []  # in marking order; at most MAX_SHOWN
        self.overlay = False  # on only while MAX_SHOWN runs are marked (see `_update_marks`)
        self.polls = 0
        self._views_key: tuple = ()
        self._warnings = _CollectWarnings()

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield RunList(tz=self.tz, id="runs")
            with Vertical(id="main"):
                yield Static(empty_message(self.runs_dir), id="empty")
                with Grid(id="charts"):
                    yield LineChart(("train loss",), id="loss")
                    yield LineChart(("HR@10",), value_format=_metric, id="hr")
                    yield LineChart(("NDCG@10",), value_format=_metric, id="ndcg")
                    yield LineChart(("peak memory",), id="memory")
                    yield LineChart(("epoch time (s)", "epoch s"), id="seconds")
                yield StatsPanel(id="stats")
        yield Footer()

    def on_mount(self) -> None:
        logging.getLogger("seqbench").addHandler(self._warnings)
        self.poll_now()
        self._update_empty()
        self.set_interval(self.poll_interval, self._on_poll_timer, name="poll")
        self.run_list.focus()

    def on_unmount(self) -> None:
        logging.getLogger("seqbench").removeHandler(self._warnings)

    @property
    def run_list(self) -> RunList:
        return self.query_one(RunList)

    def chart(self, name: str) -> LineChart:
        """One of the charts: loss, hr, ndcg, memory or seconds."""
        return self.query_one(f"#{name}", LineChart)

    def shown_ids(self) -> list[str]:
        """The runs the charts show: the marked ones with the overlay on, else the highlighted
        one."""
        if self.overlay:
            return list(self.marked)
        highlighted = self.run_list.highlighted_id
        return [] if highlighted is None else [highlighted]

    def _on_poll_timer(self) -> None:
        """The timer's poll; it can fire once more while the app shuts down."""
        if self.is_running:  # not while shutting down: the widgets are already gone
            self.poll_now()

    def poll_now(self, force: bool = False) -> None:
        """One poll: read what changed on disk and update the widgets that show it."""
        self.polls += 1
        result = self.watcher.poll(self.shown_ids(), force=force)
        run_list = self.run_list
        if result.added or result.removed:
            self.marked = [run_id for run_id in self.marked if run_id in self.watcher.runs]
            run_list.sync(self.watcher.ordered())
            follow = not (run_list.chosen_by_user or self.marked)  # else: stay where put
            if (follow or run_list.highlighted is None) and run_list.option_count:
                self._highlight_latest()
            self._update_marks()
            self._update_empty()
        for run_id in result.changed:
            run = self.watcher.runs.get(run_id)
            if run is not None:
                run_list.update_run(run)
        self._update_views()
        self._flush_warnings()

    def _highlight_latest(self) -> None:
        """Highlight the newest running run, else the newest run."""
        ordered = self.watcher.ordered()
        running = [i for i, run in enumerate(ordered) if run.status == "running"]
        index = running[-1] if running else len(ordered) - 1
        self.run_list.highlighted = index

    def _update_empty(self) -> None:
        has_runs = bool(self.watcher.runs)
        self.query_one("#empty").display = not has_runs
        self.query_one("#charts").display = has_runs
        self.query_one("#stats").display = has_runs
        self.run_list.border_title = escape(
            f"{self.runs_dir.name or self.runs_dir} · {len(self.watcher.runs)}")

    def _update_marks(self) -> None:
        """Show the marks, and in the list's bottom line what they allow; an overlay short of
        its two runs (one unmarked, or deleted) is switched off first."""
        if len(self.marked) < MAX_SHOWN:
            self.overlay = False
        self.run_list.set_marks(
            {run_id: SERIES_COLOURS[i] for i, run_id in enumerate(self.marked)})
        self.run_list.border_subtitle = marks_line(len(self.marked), self.overlay)

    def _update_views(self) -> None:
        """Redraw charts and numbers if the runs on screen, or their data, changed."""
        runs = [self.watcher.runs[i] for i in self.shown_ids() if i in self.watcher.runs]
        key = tuple((run.run_id, run.version) for run in runs)
        if key == self._views_key:
            return
        self._views_key = key
        coloured = list(zip(runs, SERIES_COLOURS, strict=False))
        self._update_charts(coloured, name_levels(runs))
        self.query_one(StatsPanel).show(coloured)

    def _update_charts(self, coloured: list[tuple[TrackedRun, str]],
                       names: list[tuple[str, ...]]) -> None:
        def series(values: Callable[[TrackedRun], Sequence[float | None]],
                   scale: float = 1.0) -> list[ChartSeries]:
            made = []
            for (run, colour), (name, *shorter) in zip(coloured, names, strict=True):
                ys = [None if v is None else v / scale for v in values(run)]
                xs, ys = finite_points(run.series.epochs, ys)
                made.append(ChartSeries(name, xs, ys, colour, tuple(shorter)))
            return made

        runs = [run for run, _ in coloured]
        waiting = "no run selected" if not runs else "waiting for the first epoch"
        self.chart("loss").set_data(series(lambda r: r.series.train_loss),
                                    empty_message=waiting)
        protocol = next((run.protocol for run in runs if run.protocol), None)
        no_valid = waiting
        if runs and all(run.is_pretraining for run in runs):
            no_valid = "no validation in pretraining"
        elif any(run.series.epochs for run in runs):
            no_valid = "no validation yet"
        for chart_id, metric, values in (("hr", "HR@10", lambda r: r.series.hr10),
                                         ("ndcg", "NDCG@10", lambda r: r.series.ndcg10)):
            titles = ((f"validation {metric} ({protocol})", f"{metric} ({protocol})",
                       f"{metric} {protocol}") if protocol else (metric,))
            message = f"no {metric} in validation" if protocol else no_valid
            self.chart(chart_id).set_data(series(values), titles=titles,
                                          empty_message=message)
        peaks = [v for run in runs for v in run.series.peak_memory_bytes if v is not None]
        unit, scale = ("GiB", 2.0**30) if peaks and max(peaks) >= 2**30 else ("MiB", 2.0**20)
        kind = memory_label({run.memory_kind for run in runs if run.memory_kind})
        long_kind = {"GPU": "GPU, CUDA-allocated", "CPU RSS": "CPU RSS"}.get(kind, kind)
        self.chart("memory").set_data(
            series(lambda r: r.series.peak_memory_bytes, scale),
            titles=(f"peak memory ({long_kind}, {unit})", f"peak {kind} ({unit})",
                    f"peak {kind} {unit}", f"{kind} {unit}"),
            empty_message=waiting)
        self.chart("seconds").set_data(series(lambda r: r.series.epoch_seconds),
                                       empty_message=waiting)

    def _flush_warnings(self) -> None:
        messages, self._warnings.messages = self._warnings.messages, []
        for message in messages[:MAX_NOTIFICATIONS]:
            self.notify(message, severity="warning", markup=False)
        if len(messages) > MAX_NOTIFICATIONS:
            self.notify(f"and {len(messages) - MAX_NOTIFICATIONS} more warnings",
                        severity="warning", markup=False)

    @on(OptionList.OptionHighlighted, "#runs")
    def _on_highlight(self) -> None:
        if self.is_running:
            self._update_views()

    def action_next_run(self) -> None:
        self.run_list.action_cursor_down()

    def action_previous_run(self) -> None:
        self.run_list.action_cursor_up()

    def action_mark(self) -> None:
        """Mark the highlighted run for overlay, or unmark it; a third mark drops the first.

        Marking never switches the overlay on (`o` does), so `o` after two marks shows it.
        """
        run_id = self.run_list.highlighted_id
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked = [*self.marked, run_id][-MAX_SHOWN:]
        self._update_marks()
        self._update_views()

    def action_overlay(self) -> None:
        """Switch between the two marked runs overlaid and the highlighted run alone; with
        fewer marked, say how to get an overlay instead."""
        if len(self.marked) < MAX_SHOWN:
            self.notify(f"{NEED_TWO_MARKED} ({len(self.marked)} marked).",
                        title="Overlay", severity="warning", markup=False)
            return
        self.overlay = not self.overlay
        self._update_marks()
        self._update_views()

    def action_help(self) -> None:
        """The keys and the overlay rule, for as long as it takes to read them."""
        self.notify(HELP, title="Keys", timeout=15, markup=False)

    def action_refresh(self) -> None:
        """List the directory now and reread statuses and the runs on screen."""
        self.poll_now(force=True)

    def action_zoom(self) -> None:
        """Maximize the focused chart, or the first (train loss) when no chart has the focus
        (the run list has it at start); or restore the maximized one."""
        if self.screen.maximized is not None:
            self.screen.minimize()
            return
        if not self.query_one("#charts").display:  # no runs yet: nothing to zoom
            return
        focused = self.focused
        chart = focused if isinstance(focused, LineChart) else self.chart("loss")
        chart.focus()
        self.screen.maximize(chart, container=False)


def _metric(value: float) -> str:
    return f"{value:.4f}"


def marks_line(marked: int, overlay: bool) -> str:
    """The run list's bottom line: how many runs are marked, and what `o` would do now.

    "overlay on" shows only while the overlay is drawn.
    """
    if overlay:
        return f"{marked} marked · overlay on"
    if marked >= MAX_SHOWN:
        return f"{marked} marked · overlay off"
    if marked:
        return f"{marked} marked · mark one more"
    return "space: mark 2 to overlay"


def run_dash(runs_dir: Path) -> None:
    """Run the dashboard on `runs_dir` until the user quits."""
    DashApp(Path(runs_dir)).run()


__all__ = ["DashApp", "run_dash"]
