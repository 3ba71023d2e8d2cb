"""The `seqbench` command line: thin recipes (parse -> build parts -> run -> print).

Errors the user can act on (`SeqbenchError`, bad options) are printed as one line on stderr
with a non-zero exit code; Ctrl-C and SIGTERM unwind normally so nothing is left half-written.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from seqbench import __version__
from seqbench.errors import SeqbenchError

console = Console()
err_console = Console(stderr=True)
INTERRUPTED = "interrupted; nothing half-written was kept"

app = typer.Typer(
    name="seqbench",
    help="Train and benchmark sequential recommenders with trustworthy, comparable numbers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        console.print(f"seqbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )


def _datasets_epilog() -> str:
    from seqbench.data.presets import PRESETS

    lines = [f"[bold]{p.name}[/bold]: {p.description}" for p in PRESETS.values()]
    return "Datasets:\n\n" + "\n\n".join(lines)


def _dataset_names() -> str:
    from seqbench.data.presets import PRESETS

    return ", ".join(PRESETS)


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML preset (see configs/); command-line options override it.",
        dir_okay=False,
    ),
]


@app.command(
    help=(
        "Read raw data with polars, filter it (iterative k-core), map ids, split leave-one-out, "
        "and cache the result; prints the dataset's statistics. The same inputs and options "
        "reuse the cache."
    ),
    epilog=_datasets_epilog(),
)
def prep(
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help=f"One of: {_dataset_names()} (see below).")
    ] = None,
    source: Annotated[
        list[Path] | None,
        typer.Option(
            "--source",
            "-s",
            help="Raw file or directory (repeat for datasets with several files).",
        ),
    ] = None,
    min_user: Annotated[
        int | None,
        typer.Option(
            help="Keep users with at least N interactions (k-core; default: the preset's)."
        ),
    ] = None,
    min_item: Annotated[
        int | None,
        typer.Option(
            help="Keep items with at least N interactions (k-core; default: the preset's)."
        ),
    ] = None,
    dedupe: Annotated[
        bool | None,
        typer.Option(
            "--dedupe/--keep-duplicates",
            help="Drop repeated (user, item) pairs, keeping the first (default: the preset's).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Cache directory (default: $SEQBENCH_CACHE or ~/.cache/seqbench).",
            file_okay=False,
        ),
    ] = None,
    download: Annotated[
        bool,
        typer.Option(
            "--download", help="Fetch the official files first (resumable, checksum-checked)."
        ),
    ] = False,
    seed: Annotated[
        int | None, typer.Option(help="Generator seed.", rich_help_panel="synthetic")
    ] = None,
    users: Annotated[
        int | None,
        typer.Option(
            help="Number of users (default: scales with --items).", rich_help_panel="synthetic"
        ),
    ] = None,
    items: Annotated[
        int | None,
        typer.Option(
            help="Catalogue size (200000 gives a Beauty-scale catalogue).",
            rich_help_panel="synthetic",
        ),
    ] = None,
    mean_len: Annotated[
        float | None, typer.Option(help="Mean sequence length.", rich_help_panel="synthetic")
    ] = None,
    user_col: Annotated[
        str | None, typer.Option(help="User column.", rich_help_panel="generic")
    ] = None,
    item_col: Annotated[
        str | None, typer.Option(help="Item column.", rich_help_panel="generic")
    ] = None,
    time_col: Annotated[
        str | None,
        typer.Option(help="Time column (default: file order).", rich_help_panel="generic"),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    from seqbench.config import load_config
    from seqbench.data.prep import prepare
    from seqbench.report.prep_table import prep_table

    run_config = load_config(
        config,
        {
            "data": {
                "dataset": dataset,
                "source": [str(p) for p in source] if source else None,
                "min_user": min_user,
                "min_item": min_item,
                "dedupe": dedupe,
                "cache_dir": str(out) if out else None,
                "download": download or None,
                "seed": seed,
                "users": users,
                "items": items,
                "mean_len": mean_len,
                "user_col": user_col,
                "item_col": item_col,
                "time_col": time_col,
            }
        },
    )
    with console.status(f"Preparing {run_config.data.dataset} ...") as status:
        result = prepare(
            run_config.data,
            console=console,
            step=lambda text: status.update(f"{run_config.data.dataset}: {text}"),
        )
    console.print(prep_table(result))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; turns known failures into one-line errors."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = app(args=argv, prog_name="seqbench", standalone_mode=False)
        if code == 130:  # the parser turns KeyboardInterrupt into exit code 130
            _fail(INTERRUPTED, 130)
        if isinstance(code, int) and code:
            sys.exit(code)
    except SeqbenchError as exc:
        _fail(str(exc), 1)
    except typer.TyperException as exc:  # a usage error found by the (vendored) click parser
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(0)  # `seqbench` alone: the parser has printed the help; not an error
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _fail(exc.format_message() + hint, exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail(INTERRUPTED, 130)
    except BrokenPipeError:
        sys.exit(141)


def _fail(message: str, code: int) -> None:
    err_console.print(
        Text.assemble(("error: ", "bold red"), message.replace("\n", " ")),
        soft_wrap=True,
        highlight=False,
    )
    sys.exit(code)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwind like Ctrl-C so staging directories are removed
