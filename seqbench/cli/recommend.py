"""`seqbench recommend RUN`: the top-k items per user of a finished run, in original ids."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from seqbench.cli.app import app
from seqbench.cli.output import console
from seqbench.errors import SeqbenchError

#: users shown on the terminal without --out (the table is for a look, files are for all)
SHOWN_USERS = 5


class History(str, Enum):
    all = "all"
    test = "test"


@app.command(help=escape(
    "Recommend with a finished bench or finetune run: the top-k items per user with their "
    "scores, in the dataset's original ids (columns user, rank, item, score; rank 1 = best), "
    "written to --out (.csv, .parquet or .jsonl) or shown as a table for a few users. Uses only "
    "the run directory (a copied run works without the dataset). With --history test it ranks "
    "the test inputs of the run's split exactly as the run's evaluation did, so HR/NDCG from the "
    "file equal the recorded full-ranking test metrics."))
def recommend(
    run: Annotated[Path, typer.Argument(help="A finished run directory.", show_default=False)],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", dir_okay=False,
        help="Write every user's list here: .csv, .parquet or .jsonl (default: a table of the "
        f"first {SHOWN_USERS} users on the terminal).", show_default=False)] = None,
    user: Annotated[list[str] | None, typer.Option(
        "--user", "-u", help="Only this user (original id); repeatable.",
        show_default=False)] = None,
    users: Annotated[Path | None, typer.Option(
        dir_okay=False, help="Only the users in this file: one id per line, or a .csv/.parquet "
        "with a user column.", show_default=False)] = None,
    histories: Annotated[Path | None, typer.Option(
        dir_okay=False, help="New histories instead of the dataset's users: one per line "
        "`user item item ...` (oldest first), or a .csv/.parquet of user,item[,ts]. Unknown "
        "items are skipped and counted.", show_default=False)] = None,
    history: Annotated[History, typer.Option(
        help="Rank from every known interaction (all: production) or from the test inputs of "
        "the run's split (test: as evaluation ranked them).")] = History.all,
    k: Annotated[int, typer.Option("--k", "-k", help="Items per user.")] = 10,
    exclude_seen: Annotated[bool, typer.Option(
        "--exclude-seen/--include-seen", help="Leave out the items already in the history.")
    ] = True,
    device: Annotated[str, typer.Option(
        help="Where to score: auto (the GPU if there is one), cpu, cuda, cuda:N.")] = "cpu",
    force: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
) -> None:
    from seqbench.inference.files import check_output, read_histories, read_users, write_frame
    from seqbench.inference.recommender import load

    if k < 1:
        raise SeqbenchError(f"--k must be at least 1, got {k}")
    if histories is not None and (user or users is not None):
        raise SeqbenchError("--histories gives its own users; it cannot be combined with "
                            "--user or --users")
    if histories is not None and history is History.test:
        raise SeqbenchError("--history test ranks the dataset's own test inputs; it cannot be "
                            "combined with --histories")
    if out is not None:
        check_output(out, force=force)
    chosen = list(user or []) + (read_users(users) if users is not None else [])
    new = read_histories(histories) if histories is not None else None
    with console.status(f"Loading {run} ..."):
        rec = load(run, device=device)
    rec.check_k(k)
    if chosen:
        rec.user_rows(chosen)  # an unknown id fails now, before any ranking
    shown: tuple[int, int] | None = None  # (shown, of) when the table shows only the first
    if out is None:  # a look at a few users
        if new is not None:
            labels = new["user"].unique(maintain_order=True)
            if len(labels) > SHOWN_USERS:
                shown = (SHOWN_USERS, len(labels))
                new = new.filter(new["user"].is_in(labels.head(SHOWN_USERS).implode()))
        else:
            available = len(chosen) if chosen else rec.dataset.num_users
            if available > SHOWN_USERS:
                shown = (SHOWN_USERS, available)
            chosen = chosen[:SHOWN_USERS] or [str(u) for u in rec.user_ids[:SHOWN_USERS]]
    count = (new["user"].n_unique() if new is not None
             else len(chosen) if chosen else rec.dataset.num_users)
    with _ranking_progress(count) as advance:
        if new is not None:
            frame = rec.recommend_frame(new, k=k, exclude_seen=exclude_seen, progress=advance)
        else:
            frame = rec.recommend_users(chosen or None, k=k, history=history.value,
                                        exclude_seen=exclude_seen, progress=advance)
    if out is not None:
        write_frame(frame, out)
        console.print(f"{frame['user'].n_unique():,} users x top-{k} -> {escape(str(out))} "
                      f"({len(frame):,} rows; history {history.value if new is None else 'file'}, "
                      f"seen items {'excluded' if exclude_seen else 'included'})",
                      highlight=False)
        return
    console.print(_table(frame))
    note = (f"; showing {shown[0]} of {shown[1]:,} users (--out FILE writes them all)"
            if shown else "")
    console.print(f"top-{k} of run {escape(rec.run_id)}{note}", highlight=False)

def _table(frame: Any) -> Table:
    table = Table()
    for column, justify in (("user", "left"), ("rank", "right"), ("item", "left"),
                            ("score", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    previous = None
    for row in frame.iter_rows(named=True):
        shown = "" if row["user"] == previous else escape(str(row["user"]))
        previous = row["user"]
        table.add_row(shown, str(row["rank"]), escape(str(row["item"])), f"{row['score']:.4f}")
    return table


class _ranking_progress:
    """A progress bar of users ranked; the callback advances it."""

    def __init__(self, total: int) -> None:
        self.total = total

    def __enter__(self) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.progress = Progress("ranking", BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True)
        self.progress.start()
        task = self.progress.add_task("ranking", total=self.total)
        return lambda users: self.progress.advance(task, users)

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()
