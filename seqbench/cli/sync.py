"""`seqbench sync`: recorded runs written to MLflow and/or TensorBoard, from the records alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from seqbench.cli.app import app
from seqbench.cli.output import console

#: from this many runs on, a progress bar shows while syncing (on a terminal)
PROGRESS_FROM = 3


@app.command(name="sync", help=escape(
    "Write recorded runs to MLflow (--mlflow URI) and/or TensorBoard (--tensorboard DIR): "
    "settings as parameters, losses and validation metrics per epoch (step = epoch), test "
    "metrics with their protocol, peak memory and epoch time, and summary.json. Reads only "
    "the run directories (runs copied from another machine too) and never loads torch. "
    "Syncing again adds only what is new (later epochs, the summary of a run that has since "
    "ended), so it can be repeated while runs are training. Needs the track extra: "
    "pip install 'seqbench[track]'. See docs/tracking.md."))
def sync(
    runs: Annotated[list[Path] | None, typer.Argument(
        metavar="[RUN]...", help="Run directories (default: every run in --runs-dir).",
        show_default=False)] = None,
    runs_dir: Annotated[Path, typer.Option(
        help="Where runs are recorded.")] = Path("runs"),
    mlflow_uri: Annotated[str | None, typer.Option(
        "--mlflow", metavar="URI", help=escape(
            "MLflow tracking URI: a directory or file:///path (file store), "
            "sqlite:///mlflow.db, or a server http://host:5000."),
        show_default=False)] = None,
    tensorboard_dir: Annotated[Path | None, typer.Option(
        "--tensorboard", metavar="DIR", help="TensorBoard log directory: one subdirectory "
        "per run (tensorboard --logdir DIR).", show_default=False)] = None,
    experiment: Annotated[str, typer.Option(
        metavar="NAME", help="MLflow experiment to write the runs to (created if missing).")
    ] = "seqbench",
) -> None:
    from rich.progress import Progress
    from rich.table import Table

    from seqbench.track.sync import SyncOptions, prepare

    sync = prepare(SyncOptions(runs=list(runs or []), runs_dir=runs_dir,
                               mlflow_uri=mlflow_uri, tensorboard_dir=tensorboard_dir,
                               experiment=experiment))
    table = Table(title=_title(mlflow_uri, tensorboard_dir, experiment), title_justify="left")
    table.add_column("run")
    table.add_column("status")
    table.add_column("epochs", justify="right")
    for target in sync.targets:
        table.add_column(target.name)
    results = []
    quiet = len(sync.records) < PROGRESS_FROM or not console.is_terminal
    with Progress(console=console, transient=True, disable=quiet) as progress:
        task = progress.add_task("syncing", total=len(sync.records))
        for record in sync.records:
            progress.update(task, description=f"syncing {escape(record.run_id)}")
            results.append(sync.run(record))
            progress.advance(task)
    for result in results:
        record = result.record
        table.add_row(escape(record.run_id), record.status, str(len(record.epochs)),
                      *(escape(outcome.describe()) for outcome in result.outcomes))
    console.print(table)


def _title(mlflow_uri: str | None, tensorboard_dir: Path | None, experiment: str) -> str:
    where = []
    if mlflow_uri is not None:
        where.append(f"MLflow {mlflow_uri} (experiment {experiment})")
    if tensorboard_dir is not None:
        where.append(f"TensorBoard {tensorboard_dir}")
    return escape("synced to " + " and ".join(where))
