"""Where the command line prints: results on stdout, logs and errors on stderr, one line each.

Piped or redirected output (logs, CI) is not wrapped at Rich's default 80 columns: result
tables have up to ~10 columns and would be cut there. Log lines are never wrapped either (the
terminal folds them), so a path in a message stays one piece that can be copied.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.text import Text

console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 140)
err_console = Console(stderr=True)

_LEVEL_STYLES = {logging.WARNING: ("warning: ", "bold yellow"),
                 logging.ERROR: ("error: ", "bold red"),
                 logging.CRITICAL: ("error: ", "bold red"),
                 logging.DEBUG: ("debug: ", "dim")}


class OneLineHandler(logging.Handler):
    """Log records as single unwrapped lines on stderr: `warning: ...`; info as is, dimmed."""

    def __init__(self, target: Console) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record).replace("\n", " ")
            prefix, style = _LEVEL_STYLES.get(record.levelno, ("", "dim"))
            self.target.print(Text.assemble((prefix, style), message), soft_wrap=True,
                              highlight=False)
        except Exception:  # a broken stderr must not end a training run
            self.handleError(record)


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[OneLineHandler(err_console)], force=True)


def print_error(message: str) -> None:
    err_console.print(Text.assemble(("error: ", "bold red"), message.replace("\n", " ")),
                      soft_wrap=True, highlight=False)


@contextmanager
def training_progress(enabled: bool = True) -> Iterator[Any]:
    """Progress bars for the runs of a command (None where this process does not print)."""
    if not enabled:
        yield None
        return
    from seqbench.report.progress import RichProgress

    with RichProgress(console) as progress:
        yield progress
