"""Rich progress bars for training: one bar for epochs, one for the batches of the epoch."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from seqbench.engine.trainer import EpochReport
from seqbench.report.format import PartsLine, format_bytes


class RichProgress:
    """A `ProgressSink` that draws bars and prints one line per finished epoch."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, transient=True,
        )
        self._epochs: TaskID | None = None
        self._batches: TaskID | None = None
        self._label = ""

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.progress.stop()

    def start_run(self, label: str, epochs: int) -> None:
        for task in (self._epochs, self._batches):
            if task is not None:
                self.progress.remove_task(task)
        self._label = escape(label)
        self._epochs = self.progress.add_task(f"{self._label}: epochs", total=epochs)
        self._batches = None

    def start_epoch(self, epoch: int, batches: int) -> None:
        if self._batches is None:
            self._batches = self.progress.add_task("batches", total=batches)
        self.progress.reset(self._batches, total=batches, description=f"epoch {epoch}")

    def advance(self) -> None:
        if self._batches is not None:
            self.progress.advance(self._batches)

    def end_epoch(self, report: EpochReport) -> None:
        if self._epochs is not None:
            self.progress.advance(self._epochs)
        parts = [f"[bold]{self._label}[/] epoch {report.epoch:>3}",
                 f"loss {report.losses.get('loss', float('nan')):.4f}"]
        parts += [f"{name} {value:.4g}" for name, value in report.losses.items() if name != "loss"]
        if report.valid:
            protocol, metrics = next(iter(report.valid.items()))
            marker = " [green]best[/]" if report.improved else ""
            parts.append(f"valid {protocol} NDCG@10 {metrics.get('NDCG@10', float('nan')):.4f}"
                         f"{marker}")
        parts += [f"{report.seconds:.1f} s", f"{report.sequences_per_second:,.0f} seq/s",
                  f"peak {format_bytes(report.peak_memory_bytes)} ({report.memory_kind})"]
        # a narrow console breaks the line between parts, never inside `9.10 GiB`
        self.progress.console.print(PartsLine(parts), highlight=False)
