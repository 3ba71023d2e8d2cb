"""PNG charts for `seqbench compare --plot`: curves, cost per loss, and S3Rec rank sweeps.

matplotlib is an optional extra, imported only here and only when charts are asked for; the
figures are drawn with the non-interactive Agg canvas (no display, no global pyplot state) and
written atomically, so a chart is either the old file or the whole new one. A loss has one
colour in every chart of every call (LOSS_COLORS, or a hue from its name for other losses).
"""

from __future__ import annotations

import io
import logging
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqbench.errors import SeqbenchError
from seqbench.fsutil import atomic_write_bytes
from seqbench.vocabulary import variant_rank

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from seqbench.report.compare.facts import RunFacts

log = logging.getLogger(__name__)

QUALITY_METRIC = "NDCG@10"
DPI = 150
_STYLE = {
    "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9,
    "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "figure.titlesize": 13,
}
_GIB = 1024**3
_MIB = 1024**2

# A loss keeps its colour in every chart and every call (tab10 hues); other losses get one of
# the remaining hues from a hash of their name (crc32: the same in every process).
LOSS_COLORS = {"ce": "#1f77b4", "cce": "#ff7f0e", "bce": "#2ca02c", "sampled": "#d62728",
               "pretrain": "#9467bd"}
FALLBACK_COLORS = ("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
# Series of one chart differ in line style and marker too, so curves that coincide (ce and
# cce train to the same loss on the CPU) both stay visible: dashes let the line below show
# through, and hollow markers of decreasing size nest inside each other. 4 and 7 share no
# factor: 28 series before a combination repeats.
LINESTYLES = ("-", "--", "-.", ":")
MARKER_SIZES = (9.0, 7.0, 5.5, 4.0)
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
HATCHES = ("", "//", "..", "xx", "\\\\", "++")


@dataclass(frozen=True)
class SeriesStyle:
    """How one series is drawn: colour from its loss (and S3Rec variant), the rest from its
    place among the chart's series."""

    color: str
    linestyle: str
    marker: str
    markersize: float

    def line_kwargs(self) -> dict[str, Any]:
        return {"color": self.color, "linestyle": self.linestyle, "marker": self.marker,
                "markersize": self.markersize, "markerfacecolor": "none", "linewidth": 1.5}


def loss_color(loss: str, variant: str | None = None) -> str:
    """The colour of a loss (`cce`) or backend (`cce[cuda-kernel]`: its loss's colour); an S3Rec
    low-rank variant is a lighter shade of it (the lower the rank, the lighter)."""
    name = loss.split("[", 1)[0]
    color = LOSS_COLORS.get(name)
    if color is None:
        color = FALLBACK_COLORS[zlib.crc32(name.encode()) % len(FALLBACK_COLORS)]
    rank = variant_rank(variant) if variant else None
    if rank is None or rank < 1:
        return color
    return _lighter(color, min(0.6, max(0.1, 0.6 - 0.1 * math.log2(rank))))


def _lighter(color: str, amount: float) -> str:
    """`color` mixed with white: amount 0 is the colour itself, 1 is white."""
    channels = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in channels)


def series_styles(keys: Sequence[tuple[str, str | None]]) -> list[SeriesStyle]:
    """One style per series of a chart, given each series' (loss or backend, variant): the
    loss's colour, and a line style, marker and marker size by its place, so that no two of the
    chart's first 28 series look alike even where their curves coincide."""
    return [SeriesStyle(loss_color(loss, variant), LINESTYLES[i % len(LINESTYLES)],
                        MARKERS[i % len(MARKERS)], MARKER_SIZES[i % len(MARKER_SIZES)])
            for i, (loss, variant) in enumerate(keys)]


def require_matplotlib() -> None:
    """Fail before anything is read or printed when --plot cannot draw."""
    _import_matplotlib()


def draw_charts(runs: list[RunFacts], *, protocols: list[str] | None = None
                ) -> dict[str, Figure]:
    """Every chart the runs allow, by file name (charts the runs do not allow are left out)."""
    matplotlib = _import_matplotlib()
    charts: list[tuple[str, Callable[[list[RunFacts], list[str] | None], Figure | None]]] = [
        ("training_curves.png", _training_curves),
        ("memory_time.png", _memory_and_time),
        ("s3rec_rank_sweep.png", _rank_sweep),
    ]
    figures = {}
    with matplotlib.rc_context(_STYLE):
        for name, draw in charts:
            figure = draw(runs, protocols)
            if figure is not None:
                figures[name] = figure
    return figures


def write_plots(runs: list[RunFacts], plot_dir: Path, *, protocols: list[str] | None = None
                ) -> list[Path]:
    """Draw every chart the runs allow into `plot_dir`; returns the files written."""
    matplotlib = _import_matplotlib()
    plot_dir = Path(plot_dir)
    try:
        plot_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SeqbenchError(f"cannot write charts to {plot_dir}: {exc.strerror or exc}") from None
    written = []
    figures = draw_charts(runs, protocols=protocols)
    with matplotlib.rc_context(_STYLE):  # savefig reads rcParams too
        for name, figure in figures.items():
            path = plot_dir / name
            _save(figure, path)
            written.append(path)
    return written


def _import_matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError:
        raise SeqbenchError("--plot needs matplotlib: pip install 'seqbench[plot]'") from None
    return matplotlib


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # draw with Agg whatever backend the process has
    return figure


def _save(figure: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise SeqbenchError(f"cannot write {path}: {exc.strerror or exc}") from None


def _labels(runs: list[RunFacts]) -> dict[int, str]:
    """Legend labels like `beauty ce s0`; runs that would share one get their id's tail."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.label] = counts.get(run.label, 0) + 1
    return {id(run): run.label if counts[run.label] == 1 else f"{run.label} ({_short_id(run)})"
            for run in runs}


def _short_id(run: RunFacts) -> str:
    return run.view.run_id.rsplit("-", 1)[-1]


def _datasets(runs: list[RunFacts]) -> str:
    return ", ".join(dict.fromkeys(run.dataset for run in runs))


# ---------------------------------------------------------------------------------------------
# (1) validation NDCG@10 and training loss per epoch


def _training_curves(runs: list[RunFacts], protocols: list[str] | None) -> Figure | None:
    """One row per dataset: validation NDCG@10 and training loss per epoch, runs overlaid."""
    runs = [run for run in runs if not run.is_pretrain and run.view.events_of("epoch")]
    if not runs:
        log.info("no epoch records among the selected next-item runs: no training curves")
        return None
    protocol = _curve_protocol(runs, protocols)
    labels = _labels(runs)
    styles = dict(zip((id(run) for run in runs),
                      series_styles([(run.loss, run.variant) for run in runs]), strict=True))
    datasets = list(dict.fromkeys(run.dataset for run in runs))
    figure = _new_figure(13, 4.6 * len(datasets))
    grid = figure.subplots(len(datasets), 2, squeeze=False)
    for (ax_quality, ax_loss), dataset in zip(grid, datasets, strict=True):
        for run in (r for r in runs if r.dataset == dataset):
            epochs = run.view.events_of("epoch")
            points = [(e.get("epoch"), _valid_metric(e, protocol)) for e in epochs]
            points = [(x, y) for x, y in points if isinstance(x, int) and y is not None]
            losses = [(e.get("epoch"), _finite(e.get("train_loss"))) for e in epochs]
            losses = [(x, y) for x, y in losses if isinstance(x, int) and y is not None]
            style = styles[id(run)].line_kwargs()  # one run looks the same in both panels
            if points:
                ax_quality.plot(*zip(*points, strict=True), label=labels[id(run)], **style)
            if losses:
                ax_loss.plot(*zip(*losses, strict=True), label=labels[id(run)], **style)
        ax_quality.set_title(f"{dataset}: validation {QUALITY_METRIC} ({protocol} ranking)")
        ax_quality.set_xlabel("epoch")
        ax_quality.set_ylabel(f"{QUALITY_METRIC} (validation, {protocol})")
        ax_loss.set_title(f"{dataset}: training loss per epoch")
        for ax in (ax_quality, ax_loss):
            ax.xaxis.set_major_locator(_integer_ticks())
        ax_loss.set_xlabel("epoch")
        ax_loss.set_ylabel("training loss (mean per batch)")
        ax = ax_loss if ax_loss.get_legend_handles_labels()[0] else ax_quality
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="run", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return figure


def _curve_protocol(runs: list[RunFacts], protocols: list[str] | None) -> str:
    """--protocol's first choice, else the protocol the runs selected their best epoch by."""
    if protocols:
        return protocols[0]
    for run in runs:
        for event in run.view.events_of("epoch"):
            valid = event.get("valid")
            if isinstance(valid, dict) and valid:
                return str(next(iter(valid)))
    return "full"


def _valid_metric(event: dict[str, Any], protocol: str) -> float | None:
    valid = event.get("valid")
    values = valid.get(protocol) if isinstance(valid, dict) else None
    return _finite(values.get(QUALITY_METRIC)) if isinstance(values, dict) else None


def _finite(value: Any) -> float | None:
    from seqbench.runs.schema import number

    return number(value)


# ---------------------------------------------------------------------------------------------
# (2) peak memory and mean epoch time per loss, grouped by dataset


def _memory_and_time(runs: list[RunFacts], protocols: list[str] | None) -> Figure | None:
    from seqbench.report.compare.rows import summarize

    runs = [run for run in runs if not run.is_pretrain
            and (run.peak_memory_bytes is not None or run.mean_epoch_seconds is not None)]
    if not runs:
        log.info("no memory or time records among the selected next-item runs: no cost chart")
        return None
    kinds = list(dict.fromkeys(run.memory_kind or "unknown kind" for run in runs))

    def series_of(run: RunFacts) -> str:
        # CPU RSS and CUDA allocations (and CPU and GPU times) are never one bar
        return run.backend if len(kinds) == 1 else f"{run.backend} · {run.memory_kind}"

    datasets = list(dict.fromkeys(run.dataset for run in runs))
    series = sorted(dict.fromkeys(series_of(run) for run in runs))
    loss_of = {series_of(run): run.loss for run in runs}
    color = {name: loss_color(loss_of[name]) for name in series}
    hatch = {}  # series of one colour (two cce backends, or two memory kinds) differ in hatch
    for name in series:
        same_color = [other for other in hatch if color[other] == color[name]]
        hatch[name] = HATCHES[len(same_color) % len(HATCHES)]
    biggest = max((run.peak_memory_bytes or 0) for run in runs)
    unit, scale = ("GiB", _GIB) if biggest >= _GIB else ("MiB", _MIB)
    most_bars = max(len({series_of(r) for r in runs if r.dataset == d}) for d in datasets)
    figure = _new_figure(max(10.0, 2.0 + 1.1 * len(datasets) * most_bars), 5)
    ax_memory, ax_time = figure.subplots(1, 2)
    width = 0.8 / most_bars
    in_legend: set[str] = set()
    several = False
    for i, dataset in enumerate(datasets):
        present = [name for name in series if any(
            r.dataset == dataset and series_of(r) == name for r in runs)]
        for j, name in enumerate(present):  # the bars of one dataset, centred on its tick
            members = [r for r in runs if r.dataset == dataset and series_of(r) == name]
            several = several or len(members) > 1
            x = i + (j - (len(present) - 1) / 2) * width
            label = "_nolegend_" if name in in_legend else name
            in_legend.add(name)
            memory = summarize(r.peak_memory_bytes for r in members)
            seconds = summarize(r.mean_epoch_seconds for r in members)
            if memory is not None:
                _bar(ax_memory, x, memory.mean / scale, (memory.std or 0) / scale, width,
                     color[name], hatch[name], label)
            if seconds is not None:
                _bar(ax_time, x, seconds.mean, seconds.std or 0, width, color[name],
                     hatch[name], label)
    kind_note = kinds[0] if len(kinds) == 1 else "kind in legend"
    for ax in (ax_memory, ax_time):
        ax.set_xticks(range(len(datasets)), datasets)
        ax.set_xlabel("dataset")
        ax.grid(axis="x", visible=False)
        ax.margins(y=0.15)
        ax.set_ylim(bottom=0)  # a wide whisker must not suggest negative memory or time
    ax_memory.set_title(f"Peak memory per epoch, by loss — {', '.join(datasets)}")
    ax_memory.set_ylabel(f"peak memory ({unit}, {kind_note})")
    ax_time.set_title(f"Mean training time per epoch, by loss — {', '.join(datasets)}")
    ax_time.set_ylabel("seconds per epoch")
    handles, names = ax_memory.get_legend_handles_labels()
    if not handles:
        handles, names = ax_time.get_legend_handles_labels()
    figure.legend(handles, names, loc="outside lower center", title="loss",
                  ncols=min(len(names), 4))
    if several:
        figure.suptitle("bars: mean over runs · whiskers: sample std", fontsize=10)
    return figure


def _bar(ax: Axes, x: float, height: float, error: float, width: float, color: str,
         hatch: str, label: str) -> None:
    bars = ax.bar([x], [height], width, yerr=[error] if error else None, capsize=3,
                  color=color, hatch=hatch or None, edgecolor="white" if hatch else None,
                  label=label)
    ax.bar_label(bars, labels=[_short_number(height)], padding=2, fontsize=8)


def _short_number(value: float) -> str:
    """Three significant figures or so: enough on a bar, short enough not to collide."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


# ---------------------------------------------------------------------------------------------
# (3) S3Rec rank sweeps: quality and pretraining parameters against rank


def _rank_sweep(runs: list[RunFacts], protocols: list[str] | None) -> Figure | None:
    from seqbench.report.compare.rows import rank_order

    tuned = [run for run in runs if run.is_finetuned_from_pretrain and run.test]
    pretrained = [run for run in runs if run.is_pretrain and _account(run)]
    swept = {dataset for dataset in dict.fromkeys(run.dataset for run in tuned + pretrained)
             if len({r.variant for r in tuned if r.dataset == dataset}) > 1
             or len({r.variant for r in pretrained if r.dataset == dataset}) > 1}
    if not swept:
        log.info("no S3Rec rank sweep among the selected runs (it needs pretrain or fine-tune "
                 "runs of at least two ranks on one dataset); no sweep chart")
        return None
    tuned = [run for run in tuned if run.dataset in swept]
    pretrained = [run for run in pretrained if run.dataset in swept]
    variants = sorted({run.variant for run in tuned + pretrained}, key=rank_order)
    position = {variant: i for i, variant in enumerate(variants)}
    shown = [p for p in dict.fromkeys(p for run in tuned for p in run.test)
             if not protocols or p in protocols]
    panels = len(shown) + (1 if pretrained else 0)
    figure = _new_figure(max(6.0, 5.0 * panels), 4.8)
    axes = list(figure.subplots(1, panels, squeeze=False)[0])
    for ax, protocol in zip(axes, shown, strict=False):
        _quality_panel(ax, tuned, protocol, position)
    if pretrained:
        _parameter_panel(axes[-1], pretrained, position)
    for ax in axes:
        ax.set_xticks(range(len(variants)), [_rank_tick(v) for v in variants])
        ax.set_xlabel("rank of the low-rank pretraining heads")
        ax.margins(x=0.08)
        ax.legend(loc="best")
    return figure


def _quality_panel(ax: Axes, tuned: list[RunFacts], protocol: str,
                   position: dict[str | None, int]) -> None:
    from seqbench.report.compare.rows import summarize

    datasets = list(dict.fromkeys(run.dataset for run in tuned))
    losses = [next(run.loss for run in tuned if run.dataset == dataset) for dataset in datasets]
    styles = series_styles([(loss, None) for loss in losses])
    for dataset, style in zip(datasets, styles, strict=True):
        points = []
        for variant, x in position.items():
            stat = summarize(run.test.get(protocol, {}).get(QUALITY_METRIC) for run in tuned
                             if run.dataset == dataset and run.variant == variant)
            if stat is not None:
                points.append((x, stat.mean, stat.std or 0.0))
        if points:
            xs, ys, errors = zip(*points, strict=True)
            ax.errorbar(xs, ys, yerr=errors, capsize=3, label=f"{dataset} (fine-tuned)",
                        **style.line_kwargs())
    ax.set_title(f"Test {QUALITY_METRIC} ({protocol} ranking) — {_datasets(tuned)}")
    ax.set_ylabel(f"{QUALITY_METRIC} (test, {protocol})")


def _parameter_panel(ax: Axes, pretrained: list[RunFacts], position: dict[str | None, int]
                     ) -> None:
    from seqbench.report.compare.facts import PRETRAIN_LOSS

    datasets = list(dict.fromkeys(run.dataset for run in pretrained))
    styles = series_styles([(PRETRAIN_LOSS, None)] * len(datasets))
    for dataset, style in zip(datasets, styles, strict=True):
        members = [run for run in pretrained if run.dataset == dataset]
        points = sorted({(position[run.variant], _account(run)["total"]) for run in members
                         if isinstance(_account(run).get("total"), int)})
        if points:
            ax.plot(*zip(*points, strict=True), label=f"{dataset}: as built",
                    **style.line_kwargs())
            full = next((_account(run).get("total_full_rank") for run in members
                         if isinstance(_account(run).get("total_full_rank"), int)), None)
            if full:
                ax.axhline(full, linestyle=(0, (6, 3)), linewidth=1, color=style.color,
                           label=f"{dataset}: full-rank heads")
                for x, total in points:
                    ax.annotate(f"{(total / full - 1) * 100:+.1f}%", (x, total),
                                textcoords="offset points", xytext=(0, 6), ha="center",
                                fontsize=8)
    ax.set_title(f"Pretraining parameters — {_datasets(pretrained)}")
    ax.set_ylabel("parameters (whole pretraining model)")
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    ax.yaxis.set_major_formatter(_thousands())


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda value, _: f"{value:,.0f}")


def _rank_tick(variant: str | None) -> str:
    """The rank axis label: "16" for r16, "16-aap" for r16-aap, "full" as is."""
    if variant and variant_rank(variant) is not None:
        return variant[1:]
    return variant or "?"


def _account(run: RunFacts) -> dict[str, Any]:
    """The parameter account of a pretraining run (summary.json, else config.json)."""
    for source in (run.view.summary or {}, run.view.config.get("resolved") or {}):
        account = source.get("parameter_account") if isinstance(source, dict) else None
        if isinstance(account, dict):
            return account
    return {}
