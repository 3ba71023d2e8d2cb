"""`seqbench dash`: the braille chart, the incremental run watcher and the app, driven headless.

The app tests write fake runs (config.json + events.jsonl) into a temporary directory, start
the app with a fast poll, change the files while it runs and wait (with a deadline) for the
screen to follow. pytest-asyncio is not used: each test runs its pilot with `asyncio.run`.

The snapshot test compares the text of the 80x24 screen with tests/report/snapshots/
dash_80x24.txt, and checks the layout facts that matter on their own; colours, fonts and the
SVG that Rich and Textual releases render differently are not part of it. To update it after
an intended change of the layout: delete that file, run the test once (it writes the file and
fails, saying so), look at the text, and run the test again.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console
from textual.pilot import Pilot

from seqbench.dash.app import HELP, NEED_TWO_MARKED, SERIES_COLOURS, DashApp, marks_line
from seqbench.dash.charts import (
    BRAILLE_BASE,
    LEGEND_MARK,
    ChartSeries,
    LineChart,
    bucket_means,
    compact_number,
    render_chart,
)
from seqbench.dash.names import backend_initials, name_levels
from seqbench.dash.run_list import pack
from seqbench.dash.runs_model import RunsWatcher, TrackedRun
from seqbench.dash.stats import StatsPanel, stats_lines

SNAPSHOT = Path(__file__).parent / "snapshots" / "dash_80x24.txt"
CHARTS = ("loss", "hr", "ndcg", "memory", "seconds")
START = 1_795_000_000.0  # a fixed start time, shown in UTC, so screens are reproducible
MIB = 2**20


# --- fake runs -------------------------------------------------------------------------------

def epoch_event(epoch: int, *, loss: float | None = None, hr: float | None = None,
                ndcg: float | None = None, memory: float = 300 * MIB,
                kind: str = "cuda-allocated", seconds: float = 1.5,
                protocol: str = "full") -> dict[str, Any]:
    """An "epoch" event as the trainer writes it; values default to a plausible curve."""
    loss = 9.0 - epoch * 0.5 if loss is None else loss
    hr = 0.02 * epoch if hr is None else hr
    ndcg = 0.01 * epoch if ndcg is None else ndcg
    return {"event": "epoch", "time": START + epoch, "epoch": epoch, "train_loss": loss,
            "losses": {"loss": loss},
            "valid": {protocol: {"HR@10": hr, "NDCG@10": ndcg},
                      "sampled-99": {"HR@10": 0.9, "NDCG@10": 0.8}},
            "epoch_seconds": seconds, "sequences_per_second": 20000.0 / seconds,
            "peak_memory_bytes": memory, "memory_kind": kind, "device": "cuda"}


def write_run(runs_dir: Path, name: str, *, backend: str = "ce[torch]", seed: int = 0,
              started: float = START, events: list[dict[str, Any]] | None = None,
              dataset: str = "beauty", model: str = "sasrec") -> Path:
    """A run directory with config.json and events.jsonl (a start event, then `events`)."""
    path = runs_dir / name
    path.mkdir(parents=True)
    config = {"data": {"dataset": dataset},
              "train": {"loss": backend.split("[")[0], "seed": seed},
              "resolved": {"model": model, "loss_backend": backend, "device": "cuda"},
              "environment": {"run_id": name, "started_unix": started}}
    (path / "config.json").write_text(json.dumps(config))
    lines = [{"event": "start", "time": started, "run_id": name}, *(events or [])]
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return path


def append(path: Path, *events: dict[str, Any]) -> None:
    with open(path / "events.jsonl", "a") as f:
        f.write("".join(json.dumps(e) + "\n" for e in events))


def standard_runs(runs_dir: Path) -> dict[str, Path]:
    """Three runs: CE finished after 6 epochs, CCE running at epoch 4, one failed at 2."""
    ce = write_run(runs_dir, "r1-ce", events=[epoch_event(e) for e in range(1, 7)]
                   + [{"event": "end", "time": START + 7, "status": "finished"}])
    cce = write_run(runs_dir, "r2-cce", backend="cce[cuda-kernel]", started=START + 60,
                    events=[epoch_event(e, loss=8.8 - e * 0.45, memory=120 * MIB)
                            for e in range(1, 5)])
    failed = write_run(runs_dir, "r3-bce", backend="bce[uniform-1]", seed=1,
                       started=START + 120,
                       events=[epoch_event(e, kind="cpu-rss") for e in range(1, 3)]
                       + [{"event": "failed", "time": START + 200,
                           "error": "CUDA out of memory [torch]"}])
    return {"ce": ce, "cce": cce, "failed": failed}


# --- driving the app -------------------------------------------------------------------------

def make_app(runs_dir: Path) -> DashApp:
    return DashApp(runs_dir, poll_interval=0.05, relist_interval=0.1, tz=timezone.utc)


def drive(app: DashApp, script: Callable[[Pilot, DashApp], Awaitable[None]],
          size: tuple[int, int] = (80, 24)) -> None:
    """Run `script` against the app in a headless terminal of `size`."""
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await script(pilot, app)

    asyncio.run(main())


async def wait_for(pilot: Pilot, condition: Callable[[], bool], what: str,
                   timeout: float = 5.0) -> None:
    """Let the app run until `condition` holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def wait_polls(pilot: Pilot, app: DashApp, count: int) -> None:
    """Let `count` more polls happen (so a change on disk had every chance to show)."""
    target = app.polls + count
    await wait_for(pilot, lambda: app.polls >= target, f"{count} polls")


def list_texts(app: DashApp) -> list[str]:
    return [option.prompt.plain for option in app.run_list.options]


def stats_text(app: DashApp) -> str:
    return app.query_one(StatsPanel).render().plain


def screen_lines(app: DashApp) -> list[str]:
    """The screen as plain text, a line per row: what a reader sees, whatever the colours.

    Rendered the way `App.export_screenshot` renders the screen (the compositor's full
    update), but recorded as text rather than as an SVG.
    """
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      color_system=None, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text().rstrip("\n").split("\n")


def legend_names(text: str) -> list[str]:
    """The names in a chart's legend entries ("━ ce 6.00" or "━ce 6.00"), in order."""
    return re.findall(LEGEND_MARK + r" ?(\S+(?: s\d+)?) -?[\d.]+[kM]?", text)


def tracked(name: str, *, backend: str = "ce[torch]", seed: int = 0, dataset: str = "beauty",
            model: str = "sasrec", split: str = "loo") -> TrackedRun:
    """A run as the watcher knows it, without files: only its config matters to its name."""
    config = {"data": {"dataset": dataset, "split": split}, "train": {"seed": seed},
              "resolved": {"model": model, "loss_backend": backend}}
    return TrackedRun(path=Path("runs") / name, config=config)


def capture_notifications(app: DashApp, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The messages the app notifies from now on (toasts are not drawn under `run_test`)."""
    shown: list[str] = []
    monkeypatch.setattr(app, "notify", lambda message, **_: shown.append(message))
    return shown


# --- the chart -------------------------------------------------------------------------------

def braille_cells(line: str) -> list[int]:
    """Positions of braille characters with at least one dot in `line`."""
    return [i for i, ch in enumerate(line) if BRAILLE_BASE < ord(ch) <= BRAILLE_BASE + 0xFF]


def test_chart_has_the_requested_size_labels_and_last_value() -> None:
    series = ChartSeries("ce", (1.0, 2.0, 3.0, 4.0), (1.0, 2.0, 3.0, 4.0), "red")
    text = render_chart([series], 30, 8, titles=["train loss"])
    lines = text.plain.split("\n")
    assert len(lines) == 8
    assert all(cell_len(line) == 30 for line in lines)
    assert lines[0].startswith("train loss") and lines[0].rstrip().endswith("ce 4.00")
    # The last line is the epoch axis (see the epoch axis test); the plot is above it.
    assert lines[1].startswith("4.00┤") and lines[-2].startswith("1.00┤")
    assert all(line.startswith("    │") for line in lines[2:-2])
    # A rising line: the first plotted column sits on the bottom row, the last on the top row.
    plot_start = len("4.00┤")
    assert braille_cells(lines[-2])[0] == plot_start
    assert braille_cells(lines[1])[-1] == 29
    assert not braille_cells(lines[1][:plot_start + 10])


def test_chart_has_an_epoch_axis_from_the_first_to_the_last_epoch() -> None:
    """Under the plot: the first epoch under its first column, the last under its last."""
    epochs = tuple(float(e) for e in range(1, 64))
    series = ChartSeries("ce", epochs, tuple(10.0 - e / 10 for e in epochs), "red")
    lines = render_chart([series], 30, 8, titles=["train loss"]).plain.split("\n")
    assert len(lines) == 8 and cell_len(lines[-1]) == 30
    plot_start = len("9.90┤")
    assert lines[-1] == "    └ep 1" + "─" * (30 - plot_start - len("ep 1ep 63")) + "ep 63"
    assert braille_cells(lines[1])[0] == plot_start  # epoch 1 is drawn above "ep 1"
    assert braille_cells(lines[-2])[-1] == 29  # epoch 63 above the end of "ep 63"

    def axis(xs: tuple[float, ...], width: int) -> str:
        one = ChartSeries("ce", xs, tuple(1.0 for _ in xs), "red")
        return render_chart([one], width, 5).plain.split("\n")[-1]

    assert axis((1.0,), 20).rstrip("─").endswith("└ep 1")  # one epoch: its dot is at the start
    assert axis((0.5, 2.5), 20) == "    └ep 0.5───ep 2.5"  # fractional epochs
    assert axis(epochs, 13) == "    └1──ep 63"  # narrow: the first label shortens
    assert len(render_chart([series], 30, 2).plain.split("\n")) == 2  # no room: no axis
    empty = render_chart([], 30, 5, titles=["loss"], empty_message="waiting").plain
    assert "ep " not in empty and "└" not in empty  # nothing drawn, no range to show


def test_chart_overlays_two_series_in_their_colours_with_a_legend() -> None:
    a = ChartSeries("ce", (1, 2, 3), (3.0, 2.0, 1.0), "red")
    b = ChartSeries("cce", (1, 2, 3, 4), (3.5, 2.5, 1.5, 1.25), "blue")
    wide = render_chart([a, b], 60, 10, titles=["train loss"])
    header = wide.plain.split("\n")[0]
    assert "━ ce 1.00" in header and "━ cce 1.25" in header
    styles = {str(span.style) for span in wide.spans}
    assert {"red", "blue"} <= styles
    # Narrow: the names must stay (they tell the curves apart without colour), so the legend
    # moves to a line of its own below the plot (it used to keep the title line, unnamed);
    # too narrow even for the names there: the values alone.
    narrow = render_chart([a, b], 26, 6, titles=["train loss"]).plain.split("\n")
    assert narrow[0].rstrip() == "train loss" and narrow[-1] == "━ ce 1.00 ━ cce 1.25"
    tight = render_chart([a, b], 16, 6, titles=["train loss"]).plain.split("\n")
    assert tight[0].strip() == "train loss" and "━1.00 ━1.25" in tight[-1]
    assert len(tight) == 6


def test_two_series_legend_takes_the_most_detailed_names_that_fit() -> None:
    """Each entry names its run at every width where a name fits, shortening the names (and
    the title) before it would show bare values."""
    ce = ChartSeries("ce[torch] s0", (1, 2), (7.0, 6.0), "red", ("ce[torch]", "ce"))
    cce = ChartSeries("cce[cuda-kernel] s0", (1, 2), (8.0, 7.0), "blue",
                      ("cce[cuda-kernel]", "cce"))
    titles = ("train loss",)

    def legend(width: int) -> list[str]:
        return legend_names(render_chart([ce, cce], width, 7, titles=titles).plain)

    assert legend(80) == ["ce[torch] s0", "cce[cuda-kernel] s0"]
    assert legend(50) == ["ce[torch]", "cce[cuda-kernel]"]
    assert legend(24) == ["ce", "cce"]  # the dashboard's chart width at 80 columns
    # A shorter title with names beats a longer title with bare values.
    wide_title = render_chart([ce, cce], 24, 7, titles=("peak GPU (MiB)", "GPU MiB"),
                              value_format=lambda v: f"{v:.0f}").plain.split("\n")
    assert wide_title[0] == "GPU MiB   ━ ce 6 ━ cce 7"  # it was "peak GPU (MiB)     ━6 ━7"
    # The colours stay on the named entries.
    text = render_chart([ce, cce], 24, 7, titles=titles)
    styled = {text.plain[span.start:span.end]: str(span.style) for span in text.spans}
    assert styled["━ ce 6.00"] == "red" and styled["━ cce 7.00"] == "blue"


def test_chart_says_why_it_is_empty() -> None:
    text = render_chart([], 30, 5, titles=["HR@10 full"], empty_message="no validation")
    lines = text.plain.split("\n")
    assert len(lines) == 5 and lines[0].startswith("HR@10 full")
    assert any(line.strip() == "no validation" for line in lines)
    assert not any(braille_cells(line) for line in lines)


def test_bucket_means_reduce_5000_points_to_the_width() -> None:
    xs = [float(x) for x in range(5000)]
    buckets = bucket_means(xs, xs, 40, 0.0, 4999.0)
    assert [index for index, _ in buckets] == list(range(40))
    assert buckets[0][1] == pytest.approx(62.0)  # mean of 0..124
    assert buckets[-1][1] == pytest.approx(4937.0)  # mean of 4875..4999

    series = ChartSeries("ce", tuple(xs), tuple(xs), "red")
    started = time.perf_counter()
    text = render_chart([series], 45, 12, titles=["loss"])
    assert time.perf_counter() - started < 0.5
    lines = text.plain.split("\n")
    assert all(cell_len(line) == 45 for line in lines)
    plotted = {i for line in lines[1:] for i in braille_cells(line)}
    assert len(plotted) == 45 - len("4999┤")  # every plot column drawn, none beyond


def test_compact_numbers_fit_an_axis_label() -> None:
    for value in (0.0, 0.07083, 6.16, 42.5, 377.5, 12345.0, 2.5e7, 1e-5, -3.2):
        assert len(compact_number(value)) <= 6, value
    assert compact_number(0.07083) == "0.0708"
    assert compact_number(12345.0) == "12.3k"


def test_labels_pack_between_parts() -> None:
    parts = ["s3rec", "sasrec", "ce[torch]", "s0"]
    assert pack(parts, 40) == ["s3rec · sasrec · ce[torch] · s0"]
    assert pack(parts, 26) == ["s3rec · sasrec · ce[torch]", "s0"]
    assert pack(parts, 10) == ["s3rec", "sasrec", "ce[torch]", "s0"]


# --- the watcher -----------------------------------------------------------------------------

def test_watcher_reads_only_what_was_appended(tmp_path: Path) -> None:
    runs = standard_runs(tmp_path)
    clock = [0.0]
    watcher = RunsWatcher(tmp_path, relist_interval=1.0, clock=lambda: clock[0])
    first = watcher.poll()
    assert sorted(first.added) == ["r1-ce", "r2-cce", "r3-bce"]
    statuses = {run.run_id: run.status for run in watcher.ordered()}
    assert statuses == {"r1-ce": "finished", "r2-cce": "running", "r3-bce": "failed"}
    reads, listings = watcher.reads, watcher.listings

    for _ in range(20):  # nothing changes: no listing within the interval, no reads
        assert not watcher.poll()
    assert (watcher.reads, watcher.listings) == (reads, listings)

    append(runs["cce"], epoch_event(5))
    result = watcher.poll()
    assert result.changed == {"r2-cce"} and watcher.reads == reads + 1
    assert watcher.runs["r2-cce"].series.epochs == [1, 2, 3, 4, 5]
    clock[0] = 1.5
    watcher.poll()
    assert watcher.listings == listings + 1


def test_a_resumed_run_shows_running_while_its_resuming_process_lives(tmp_path: Path) -> None:
    """`--resume` appends to a run the list shows as ended (killed: "unknown"; stopped by its
    time limit: "finished", its summary.json removed); the next listing shows it running."""
    from seqbench.runs.read import current_writer

    killed = write_run(tmp_path, "r1", events=[epoch_event(1)])
    config = json.loads((killed / "config.json").read_text())
    config["environment"].update(pid=2**22 + 1, hostname=current_writer()["hostname"])  # gone
    (killed / "config.json").write_text(json.dumps(config))
    stopped = write_run(tmp_path, "r2", events=[epoch_event(1), {"event": "end", "time": START}])
    (stopped / "summary.json").write_text(json.dumps({"status": "finished"}))
    clock = [0.0]
    watcher = RunsWatcher(tmp_path, clock=lambda: clock[0])
    watcher.poll()
    assert [watcher.runs[r].status for r in ("r1", "r2")] == ["unknown", "finished"]

    (stopped / "summary.json").unlink()
    for path in (killed, stopped):
        append(path, {"event": "resumed", "time": START + 9, "from_epoch": 1, **current_writer()},
               epoch_event(2))
    clock[0] = 1.5
    assert watcher.poll().changed == {"r1", "r2"}
    for run in ("r1", "r2"):
        assert watcher.runs[run].status == "running" and watcher.runs[run].series.epochs == [1, 2]


# --- the app ---------------------------------------------------------------------------------

def test_lists_runs_with_status_and_label(tmp_path: Path) -> None:
    standard_runs(tmp_path)

    async def script(pilot: Pilot, app: DashApp) -> None:
        texts = list_texts(app)
        assert len(texts) == 3
        assert "finished" in texts[0] and "running" in texts[1] and "failed" in texts[2]
        assert "beauty · sasrec" in texts[0] and "ce[torch] · s0" in texts[0]
        assert "bce[uniform-1] · s1" in texts[2].replace("\n   ", " · ")
        assert "11-18 11:06" in texts[0]  # START in UTC
        # It starts on the newest running run, and its numbers are shown.
        assert app.run_list.highlighted_id == "r2-cce"
        assert re.search(r"●\s+4 ", stats_text(app))
        assert app.run_list.border_title == f"{tmp_path.name} · 3"

    drive(make_app(tmp_path), script)


def test_new_epochs_and_new_runs_appear_while_running(tmp_path: Path) -> None:
    runs = standard_runs(tmp_path)

    async def script(pilot: Pilot, app: DashApp) -> None:
        loss = app.chart("loss")
        assert loss.series[0].xs == (1, 2, 3, 4)
        append(runs["cce"], epoch_event(5, loss=6.125, hr=0.3456, ndcg=0.1234,
                                        memory=1.5 * 2**30, seconds=2.0))
        await wait_for(pilot, lambda: len(loss.series[0].xs) == 5, "epoch 5 in the chart")
        assert loss.series[0].ys[-1] == 6.125
        assert app.chart("hr").series[0].ys[-1] == 0.3456
        assert app.chart("memory").series[0].ys[-1] == pytest.approx(1.5)  # now in GiB
        assert "GiB" in "".join(app.chart("memory").titles)
        stats = stats_text(app)
        assert re.search(r"\b5 6\.12 0\.3456\s+0\.1234 1\.50 GiB 2\.00 10\.0k", stats), stats

        write_run(tmp_path, "r4-new", backend="cce[cpu-blockwise]", started=START + 900,
                  events=[epoch_event(1)])
        await wait_for(pilot, lambda: len(app.run_list.options) == 4, "the new run listed")
        assert "cce[cpu-blockwise]" in list_texts(app)[3]
        assert app.run_list.border_title == f"{tmp_path.name} · 4"
        # The user had not picked a run, so the view follows the new running one.
        await wait_for(pilot, lambda: app.run_list.highlighted_id == "r4-new", "follow")

        append(runs["cce"], {"event": "end", "time": START + 999, "status": "finished"})
        await wait_for(pilot, lambda: "finished" in list_texts(app)[1], "status change")

    drive(make_app(tmp_path), script)


def test_a_torn_last_line_waits_for_its_end(tmp_path: Path) -> None:
    runs = standard_runs(tmp_path)

    async def script(pilot: Pilot, app: DashApp) -> None:
        line = json.dumps(epoch_event(5, loss=1.25)) + "\n"
        with open(runs["cce"] / "events.jsonl", "a") as f:
            f.write(line[:40])
        await wait_polls(pilot, app, 4)
        assert app.chart("loss").series[0].xs == (1, 2, 3, 4)
        assert re.search(r"●\s+4 ", stats_text(app))
        with open(runs["cce"] / "events.jsonl", "a") as f:
            f.write(line[40:])
        await wait_for(pilot, lambda: app.chart("loss").series[0].ys[-1] == 1.25, "epoch 5")
        assert re.search(r"●\s+5 ", stats_text(app))

    drive(make_app(tmp_path), script)


def test_marking_two_runs_and_o_overlays_them(tmp_path: Path) -> None:
    """Marking two runs, then `o`, overlays them (marking alone no longer does: `o` would
    then have switched the overlay off); `o` again shows the highlighted run alone."""
    standard_runs(tmp_path)

    async def script(pilot: Pilot, app: DashApp) -> None:
        assert len(app.chart("loss").series) == 1
        await pilot.press("k", "space", "j", "space")  # mark CE, then CCE
        assert app.marked == ["r1-ce", "r2-cce"]
        assert [s.name for s in app.chart("loss").series] == ["cce[cuda-kernel] s0"]
        await pilot.press("o")
        for name in CHARTS:
            series = app.chart(name).series
            assert [s.colour for s in series] == list(SERIES_COLOURS), name
        loss = app.chart("loss").series
        assert [s.name for s in loss] == ["ce[torch] s0", "cce[cuda-kernel] s0"]
        assert (len(loss[0].xs), len(loss[1].xs)) == (6, 4)
        assert len(stats_text(app).splitlines()) == 3  # header + one row per run
        marks = [option.prompt.plain[0] for option in app.run_list.options]
        assert marks == ["◆", "◆", " "]

        assert app.run_list.border_subtitle == "2 marked · overlay on"

        await pilot.press("j")  # with the overlay on, moving does not change it
        assert [s.name for s in app.chart("loss").series][1] == "cce[cuda-kernel] s0"
        await pilot.press("o")  # overlay off: the highlighted (failed) run alone
        assert [s.name for s in app.chart("loss").series] == ["bce[uniform-1] s1"]
        assert "CUDA out of memory [torch]" in stats_text(app)
        assert app.run_list.border_subtitle == "2 marked · overlay off"
        await pilot.press("o")  # back on
        assert [s.name for s in app.chart("loss").series] == ["ce[torch] s0",
                                                               "cce[cuda-kernel] s0"]
        # Unmarking CCE leaves one mark: no overlay, the highlighted run alone (it used to
        # keep CE and add the highlighted run).
        await pilot.press("k", "space")
        assert app.marked == ["r1-ce"] and not app.overlay
        assert [s.name for s in app.chart("loss").series] == ["cce[cuda-kernel] s0"]
        assert app.run_list.border_subtitle == "1 marked · mark one more"

    drive(make_app(tmp_path), script)


def test_overlay_is_on_only_while_drawn_and_o_needs_two_marks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sequences: `o` alone; mark one, `o`; mark a second, `o`; `o`; unmark one. The list's
    bottom line says "overlay on" exactly while two runs are drawn."""
    standard_runs(tmp_path)

    def state(app: DashApp) -> tuple[int, str]:
        return len(app.chart("loss").series), app.run_list.border_subtitle

    async def script(pilot: Pilot, app: DashApp) -> None:
        shown = capture_notifications(app, monkeypatch)
        assert state(app) == (1, "space: mark 2 to overlay")  # was "overlay on", unmarked
        await pilot.press("o")
        assert state(app) == (1, "space: mark 2 to overlay") and not app.overlay
        assert shown == [f"{NEED_TWO_MARKED} (0 marked)."]

        await pilot.press("space", "o")  # mark one, o
        assert state(app) == (1, "1 marked · mark one more") and not app.overlay
        assert shown[-1] == f"{NEED_TWO_MARKED} (1 marked)."

        await pilot.press("k", "space")  # a second mark alone does not overlay
        assert state(app) == (1, "2 marked · overlay off")
        await pilot.press("o")
        assert state(app) == (2, "2 marked · overlay on") and len(shown) == 2
        await pilot.press("o")
        assert state(app) == (1, "2 marked · overlay off")
        await pilot.press("o", "space")  # on again, then unmark the highlighted CE: off
        assert state(app) == (1, "1 marked · mark one more") and not app.overlay
        await pilot.press("space", "j", "j", "space", "o")  # a third mark drops the first
        assert app.marked == ["r1-ce", "r3-bce"]
        assert state(app) == (2, "2 marked · overlay on")

    drive(make_app(tmp_path), script)


def test_marks_line_says_overlay_on_only_with_the_overlay() -> None:
    assert [marks_line(n, False) for n in range(3)] == [
        "space: mark 2 to overlay", "1 marked · mark one more", "2 marked · overlay off"]
    assert marks_line(2, True) == "2 marked · overlay on"
    assert all(cell_len(marks_line(n, on)) <= 24 for n in range(3) for on in (False, True))


def test_help_key_explains_the_overlay_rule(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    standard_runs(tmp_path)

    async def script(pilot: Pilot, app: DashApp) -> None:
        shown = capture_notifications(app, monkeypatch)
        await pilot.press("question_mark")
        assert shown == [HELP]
        assert "two marked" in HELP and "unmarking one ends it" in HELP
        assert max(cell_len(line) for line in HELP.splitlines()) <= 36  # a toast, unwrapped

    drive(make_app(tmp_path), script)


def test_overlay_legends_and_stats_rows_name_both_runs_at_80x24(tmp_path: Path) -> None:
    """Every legend entry and stats row names its run, so the curves are told apart without
    colour (in a black-and-white screenshot): here `ce` (CE) and `cce` (CCE) at least."""
    standard_runs(tmp_path)

    async def script(pilot: Pilot, app: DashApp) -> None:
        await pilot.press("k", "space", "j", "space", "o")
        for chart_id in CHARTS:
            chart = app.chart(chart_id)
            text = chart.render()
            names = legend_names(text.plain)
            assert len(names) == 2 and len(set(names)) == 2, (chart_id, text.plain)
            ce, cce = chart.series
            assert names[0] in (ce.name, *ce.shorter) and names[1] in (cce.name, *cce.shorter)
            legend = {text.plain[span.start:span.end]: str(span.style) for span in text.spans
                      if LEGEND_MARK in text.plain[span.start:span.end]}
            for name, colour in zip(names, SERIES_COLOURS, strict=True):
                assert any(name in entry and style == colour
                           for entry, style in legend.items()), (chart_id, name)
        rows = stats_text(app).splitlines()
        assert rows[0].split()[0] == "run"
        assert rows[1].split()[1] == "ce" and rows[2].split()[1] == "cce"
        assert all(cell_len(row) <= app.query_one(StatsPanel).content_size.width for row in rows)

    drive(make_app(tmp_path), script)


def test_every_chart_shows_its_epoch_range_at_80x24(tmp_path: Path) -> None:
    standard_runs(tmp_path)

    async def script(pilot: Pilot, app: DashApp) -> None:
        await pilot.press("k", "space", "j", "space", "o")  # CE: epochs 1-6, CCE: 1-4
        for chart_id in CHARTS:
            chart = app.chart(chart_id)
            lines = chart.render().plain.split("\n")
            assert len(lines) == chart.content_size.height
            axes = [line for line in lines if "└" in line]
            assert len(axes) == 1, (chart_id, lines)
            axis = axes[0]
            assert re.fullmatch(r" *└ep 1─+ep 6", axis), (chart_id, axis)
            assert cell_len(axis) == chart.content_size.width

    drive(make_app(tmp_path), script)


def test_zoom_at_start_zooms_the_first_chart_not_the_run_list(tmp_path: Path) -> None:
    standard_runs(tmp_path)

    async def script(pilot: Pilot, app: DashApp) -> None:
        assert app.focused is app.run_list
        await pilot.press("f")  # was: the run list, maximized
        assert app.screen.maximized is app.chart("loss") and app.focused is app.chart("loss")
        await pilot.press("f")
        assert app.screen.maximized is None
        await pilot.press("shift+tab", "f")  # back on the run list: still a chart
        assert app.screen.maximized is app.chart("loss")
        await pilot.press("f", "tab", "f")  # the focused chart (loss had it), when one is
        assert app.screen.maximized is app.chart("hr")

    drive(make_app(tmp_path), script)


def test_idle_runs_are_not_reread(tmp_path: Path) -> None:
    standard_runs(tmp_path)

    async def script(pilot: Pilot, app: DashApp) -> None:
        reads, listings, polls = app.watcher.reads, app.watcher.listings, app.polls
        started = time.monotonic()
        await wait_polls(pilot, app, 10)
        elapsed = time.monotonic() - started
        assert app.watcher.reads == reads  # nothing was appended: stat only, no reads
        assert app.watcher.listings - listings <= elapsed / 0.1 + 1  # at most every 0.1 s
        assert app.polls - polls >= 10
        await pilot.press("r")  # refresh rereads the runs on screen
        assert app.watcher.reads > reads

    drive(make_app(tmp_path), script)


def test_empty_directory_says_how_to_start_a_run(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs[x]"  # markup-like characters must show as they are

    async def script(pilot: Pilot, app: DashApp) -> None:
        empty = app.query_one("#empty")
        assert empty.display and not app.query_one("#charts").display
        message = str(empty.render())
        assert "seqbench bench --runs-dir" in message and "runs[x]" in message
        assert "watches the directory" in message
        write_run(runs_dir, "r1", events=[epoch_event(1)])
        await wait_for(pilot, lambda: len(app.run_list.options) == 1, "the first run")
        assert not empty.display and app.query_one("#charts").display

    drive(make_app(runs_dir), script)


def test_pretraining_runs_have_no_validation_chart(tmp_path: Path) -> None:
    event = epoch_event(1)
    event["valid"] = None
    write_run(tmp_path, "p1", backend="", model="s3rec-pretrain", events=[event])

    async def script(pilot: Pilot, app: DashApp) -> None:
        hr = app.chart("hr")
        assert hr.series[0].xs == () and hr.empty_message == "no validation in pretraining"
        assert app.chart("loss").series[0].xs == (1,)

    drive(make_app(tmp_path), script)


def test_keys_move_between_panes_and_zoom_a_chart(tmp_path: Path) -> None:
    standard_runs(tmp_path)

    async def script(pilot: Pilot, app: DashApp) -> None:
        assert app.focused is app.run_list
        await pilot.press("tab")
        assert app.focused is app.chart("loss")
        await pilot.press("tab", "f")
        assert app.screen.maximized is app.chart("hr")
        await pilot.press("f")
        assert app.screen.maximized is None
        await pilot.press("k")  # the run keys work from any pane
        assert app.run_list.highlighted_id == "r1-ce"
        keys = {binding.key for binding in app.BINDINGS if binding.show}
        assert {"q", "j", "space", "o", "r", "tab", "question_mark"} <= keys

    drive(make_app(tmp_path), script)


def test_malformed_lines_become_notifications(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    runs = standard_runs(tmp_path)
    shown: list[str] = []

    async def script(pilot: Pilot, app: DashApp) -> None:
        monkeypatch.setattr(app, "notify", lambda message, **_: shown.append(message))
        with open(runs["cce"] / "events.jsonl", "a") as f:
            f.write("{not json\n")
        await wait_for(pilot, lambda: any("malformed" in m for m in shown), "a notification")
        append(runs["cce"], epoch_event(5))
        await wait_for(pilot, lambda: len(app.chart("loss").series[0].xs) == 5, "epoch 5")

    drive(make_app(tmp_path), script)
    assert not logging.getLogger("seqbench").handlers  # the app's collector left with it


def test_name_levels_tell_the_runs_shown_together_apart() -> None:
    ce, cce = tracked("a-ce", backend="ce[torch]"), tracked("b-cce", backend="cce[cuda-kernel]")
    assert name_levels([ce]) == [("ce[torch] s0",)]
    assert name_levels([ce, cce]) == [("ce[torch] s0", "ce[torch]", "ce"),
                                      ("cce[cuda-kernel] s0", "cce[cuda-kernel]", "cce")]
    seeds = name_levels([tracked("a", seed=0), tracked("b", seed=1)])
    assert seeds == [("ce[torch] s0", "s0"), ("ce[torch] s1", "s1")]
    kernels = name_levels([tracked("a", backend="cce[cuda-kernel]"),
                           tracked("b", backend="cce[cuda-blockwise]")])
    assert [names[-1] for names in kernels] == ["cce[ck]", "cce[cb]"]  # same family "cce"
    datasets = name_levels([tracked("a", dataset="ml-1m"), tracked("b")])
    assert datasets == [("ml-1m ce[torch] s0", "ml-1m"), ("beauty ce[torch] s0", "beauty")]
    splits = name_levels([tracked("a"), tracked("b", split="temporal")])
    assert splits == [("loo ce[torch] s0", "loo"), ("temporal ce[torch] s0", "temporal")]
    assert tracked("b", split="temporal").label_parts()[:2] == ["beauty", "temporal split"]
    assert tracked("a").label_parts() == ["beauty", "sasrec", "ce[torch]", "s0"]
    reruns = name_levels([tracked("20250101-ce-a3f1"), tracked("20250102-ce-07bc")])
    assert reruns == [("ce[torch] s0 #a3f1", "#a3f1"), ("ce[torch] s0 #07bc", "#07bc")]
    for levels in (kernels, datasets, reruns, name_levels([ce, cce])):
        assert all(len({names[i] for names in levels}) == 2 for i in range(len(levels[0])))
    assert backend_initials("bce[uniform-1]") == "bce[u1]"


def test_stats_rows_name_each_of_two_runs(tmp_path: Path) -> None:
    """Two rows are told apart by name, not only by the colour of their mark."""
    standard_runs(tmp_path)
    watcher = RunsWatcher(tmp_path)
    watcher.poll()
    rows = [(watcher.runs["r1-ce"], "red"), (watcher.runs["r2-cce"], "blue")]
    narrow = [line.plain for line in stats_lines(rows, 49)]  # the width at 80 columns
    assert narrow[0].split()[:3] == ["run", "ep", "loss"] and "seq/s" in narrow[0]
    assert narrow[1].split()[1:3] == ["ce", "6"] and narrow[2].split()[1:3] == ["cce", "4"]
    assert max(cell_len(line) for line in narrow) <= 49
    wide = [line.plain for line in stats_lines(rows, 100)]
    assert "ce[torch] s0" in wide[1] and "cce[cuda-kernel] s0" in wide[2]
    assert "status" in wide[0]
    tight = [line.plain for line in stats_lines(rows, 44)]  # seq/s gives way to the names
    assert "seq/s" not in tight[0] and tight[2].split()[1] == "cce"


def test_stats_add_name_and_status_where_they_fit(tmp_path: Path) -> None:
    standard_runs(tmp_path)
    watcher = RunsWatcher(tmp_path)
    watcher.poll()
    rows = [(watcher.runs["r2-cce"], "red")]
    narrow = [line.plain for line in stats_lines(rows, 49)]
    assert "status" not in narrow[0] and "cce[cuda-kernel]" not in narrow[1]
    assert max(cell_len(line) for line in narrow) <= 49
    wide = [line.plain for line in stats_lines(rows, 100)]
    assert "run" in wide[0] and "status" in wide[0] and "cce[cuda-kernel] s0" in wide[1]


def test_chart_redraws_on_resize(tmp_path: Path) -> None:
    standard_runs(tmp_path)

    async def script(pilot: Pilot, app: DashApp) -> None:
        chart: LineChart = app.chart("loss")
        before = chart.render().plain.split("\n")
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        after = chart.render().plain.split("\n")
        assert len(after) > len(before) and cell_len(after[0]) > cell_len(before[0])
        assert len(after) == chart.content_size.height
        assert cell_len(after[0]) == chart.content_size.width

    drive(make_app(tmp_path), script)


# --- the snapshot ----------------------------------------------------------------------------

def test_snapshot_80x24(tmp_path: Path) -> None:
    """Two runs overlaid at 80x24: the layout facts that matter, then the screen's text against
    tests/report/snapshots/dash_80x24.txt (to update: delete it and run the test twice).

    Text, not an SVG: a Rich or Textual release that changes colours, fonts or the SVG's
    markup changes nothing a reader needs, so it must not fail this test (and the package
    need not pin those releases). The footer is Textual's own widget: its keys are checked,
    not its look.
    """
    runs_dir = tmp_path / "runs"
    standard_runs(runs_dir)
    screens: list[list[str]] = []

    async def script(pilot: Pilot, app: DashApp) -> None:
        await pilot.press("k", "space", "j", "space", "o")
        await wait_polls(pilot, app, 2)
        screens.append(screen_lines(app))

    drive(make_app(runs_dir), script)
    lines = screens[0]
    assert len(lines) == 24 and all(cell_len(line) == 80 for line in lines), lines
    body, footer = lines[:-1], lines[-1]
    # The run list: 30 columns, boxed, all three runs in it, its state on its bottom edge.
    assert body[0].startswith("╭─ runs · 3 ") and body[0][29] == "╮" and body[-1][29] == "╯"
    assert all(line[29] == "│" for line in body[1:-1])
    assert "2 marked · overlay on" in body[-1][:30]
    assert [line[1:3] for line in body if line[2] in "✔●✘"] == ["◆✔", "◆●", " ✘"]
    # The charts: five epoch axes, legends that name both runs, the numbers under them.
    assert sum(line.count("└ep 1") for line in body) == 5
    names = legend_names("\n".join(line[31:] for line in body))
    assert len(names) == 10  # two per chart
    assert sum(name.startswith("ce") for name in names) == 5, names  # ce, ce[torch], ...
    assert sum(name.startswith("cce") for name in names) == 5, names
    assert body[-3][31:].split()[:2] == ["run", "ep"]
    assert body[-2][31:].split()[1:3] == ["ce", "6"] and body[-1][31:].split()[1:3] == ["cce", "4"]
    shown_keys = [(b.key_display or b.key, b.description) for b in DashApp.BINDINGS if b.show]
    for key, description in shown_keys:
        assert f"{key} {description}" in footer, (key, description, footer)

    text = "\n".join(line.rstrip() for line in lines) + "\n"
    if not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(text, encoding="utf-8")
        pytest.fail(f"{SNAPSHOT} did not exist and was created: check it and rerun")
    stored = SNAPSHOT.read_text(encoding="utf-8").split("\n")[:-1]
    assert [line.rstrip() for line in body] == stored[:-1], (
        f"the screen differs from {SNAPSHOT}; if the change is intended, delete the file "
        "and rerun the test to record the new screen")
