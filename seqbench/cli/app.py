"""The `seqbench` Typer app and its entry point.

Errors the user can act on (`SeqbenchError`, bad options) are printed as one line on stderr
with a non-zero exit code; Ctrl-C and SIGTERM unwind normally so nothing is left half-written.
"""

from __future__ import annotations

import signal
import sys
from typing import Annotated, Any

import typer

from seqbench import __version__
from seqbench.cli.output import console, print_error, setup_logging
from seqbench.errors import SeqbenchError

INTERRUPTED = "interrupted; nothing half-written was kept"

app = typer.Typer(
    name="seqbench",
    help="Train and benchmark sequential recommenders with trustworthy, comparable numbers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: the arguments of this invocation, for commands that start it again (`--nproc`)
invocation: list[str] = []


def _version(value: bool) -> None:
    if value:
        console.print(f"seqbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    setup_logging(verbose)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; turns known failures into one-line errors."""
    args = list(sys.argv[1:] if argv is None else argv)
    invocation[:] = args
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = app(args=args, prog_name="seqbench", standalone_mode=False)
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
    print_error(message)
    sys.exit(code)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwind like Ctrl-C so staging directories are removed
