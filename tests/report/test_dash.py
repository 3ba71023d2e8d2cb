"""`seqbench dash`: the braille chart, the incremental run watcher and the app, driven headless.

The app tests write fake runs (config.json + events.jsonl) into a temporary directory, start
the app with a fast poll, change the files while it runs and wait (with a deadline) for the
screen to follow. pytest-asyncio is not used: each test runs its pilot with `asyncio.run`.

The snapshot test compares an 80x24 SVG screenshot with tests/snapshots/dash_80x24.svg. To
update it after an intended change of the layout: delete that file, run the test once (it
writes the file and fails, saying so), look at the SVG, and run the test again.
"""

from __future__ import annotations

import asyncio
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
from textual.pilot import Pilot

from seqbench.dash.app import SERIES_COLOURS, DashApp
from seqbench.dash.charts import (
    BRAILLE_BASE,
    ChartSeries,
    LineChart,
    bucket_means,
    compact_number,
    render_chart,
)
from seqbench.dash.run_list import pack
from seqbench.dash.runs_model import RunsWatcher
from seqbench.dash.stats import StatsPanel, stats_lines

SNAPSHOT = Path(__file__).parent / "snapshots" / "dash_80x24.svg"
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
    assert lines[1].startswith("4.00┤") and lines[-1].startswith("1.00┤")
    assert all(line.startswith("    │") for line in lines[2:-1])
    # A rising line: the first plotted column sits on the bottom row, the last on the top row.
    plot_start = len("4.00┤")
    assert braille_cells(lines[-1])[0] == plot_start
    assert braille_cells(lines[1])[-1] == 29
    assert not braille_cells(lines[1][:plot_start + 10])


def test_chart_overlays_two_series_in_their_colours_with_a_legend() -> None:
    a = ChartSeries("ce", (1, 2, 3), (3.0, 2.0, 1.0), "red")
    b = ChartSeries("cce", (1, 2, 3, 4), (3.5, 2.5, 1.5, 1.25), "blue")
    wide = render_chart([a, b], 60, 10, titles=["train loss"])
    header = wide.plain.split("\n")[0]
    assert "━ ce 1.00" in header and "━ cce 1.25" in header
    styles = {str(span.style) for span in wide.spans}
    assert {"red", "blue"} <= styles
    # Narrow: the names go, the values stay; too narrow even for that: a bottom legend line.
    narrow = render_chart([a, b], 26, 6, titles=["train loss"]).plain.split("\n")
    assert narrow[0] == "train loss" + " " * 5 + "━1.00 ━1.25"
    tight = render_chart([a, b], 16, 6, titles=["train loss"]).plain.split("\n")
    assert tight[0].strip() == "train loss" and "━1.00 ━1.25" in tight[-1]
    assert len(tight) == 6


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


def test_marking_two_runs_overlays_them(tmp_path: Path) -> None:
    standard_runs(tmp_path)

    async def script(pilot: Pilot, app: DashApp) -> None:
        assert len(app.chart("loss").series) == 1
        await pilot.press("k", "space", "j", "space")  # mark CE, then CCE
        assert app.marked == ["r1-ce", "r2-cce"]
        for name in ("loss", "hr", "ndcg", "memory", "seconds"):
            series = app.chart(name).series
            assert [s.colour for s in series] == list(SERIES_COLOURS), name
        loss = app.chart("loss").series
        assert [s.name for s in loss] == ["ce[torch] s0", "cce[cuda-kernel] s0"]
        assert (len(loss[0].xs), len(loss[1].xs)) == (6, 4)
        assert len(stats_text(app).splitlines()) == 3  # header + one row per run
        marks = [option.prompt.plain[0] for option in app.run_list.options]
        assert marks == ["◆", "◆", " "]

        await pilot.press("j")  # with two marked, moving does not change the overlay
        assert [s.name for s in app.chart("loss").series][1] == "cce[cuda-kernel] s0"
        await pilot.press("o")  # overlay off: the highlighted (failed) run alone
        assert [s.name for s in app.chart("loss").series] == ["bce[uniform-1] s1"]
        assert "CUDA out of memory [torch]" in stats_text(app)
        assert app.run_list.border_subtitle == "2 marked · overlay off"
        await pilot.press("o", "k", "space")  # back on; unmark CCE: CE + highlighted
        assert [s.name for s in app.chart("loss").series] == ["ce[torch] s0",
                                                               "cce[cuda-kernel] s0"]
        assert app.marked == ["r1-ce"]

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
        assert {"q", "j", "space", "o", "r", "tab"} <= keys

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

def _normalised_svg(svg: str) -> str:
    """The SVG without what may differ between identical screens (Rich's hash-based ids)."""
    return re.sub(r"terminal-\d+", "terminal", svg)


def test_snapshot_80x24(tmp_path: Path) -> None:
    """Compare with tests/snapshots/dash_80x24.svg (to update: delete it and run twice)."""
    runs_dir = tmp_path / "runs"
    standard_runs(runs_dir)
    screens: list[str] = []

    async def script(pilot: Pilot, app: DashApp) -> None:
        await pilot.press("k", "space", "j", "space")
        await wait_polls(pilot, app, 2)
        screens.append(app.export_screenshot(title="seqbench dash"))

    drive(make_app(runs_dir), script)
    svg = _normalised_svg(screens[0])
    if not SNAPSHOT.exists():
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(svg)
        pytest.fail(f"{SNAPSHOT} did not exist and was created: check it and rerun")
    assert svg == SNAPSHOT.read_text(), (
        f"the screen differs from {SNAPSHOT}; if the change is intended, delete the file "
        "and rerun the test to record the new screen")
