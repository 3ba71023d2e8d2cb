"""The `seqbench` command line: options derived from the declared settings (`options`), thin
commands that parse, call a recipe and print (`commands`), and the app with its entry point."""

from seqbench.cli import commands  # noqa: F401  (registers the commands on the app)
from seqbench.cli.app import app, main

__all__ = ["app", "main"]
