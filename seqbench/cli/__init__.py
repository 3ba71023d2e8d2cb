"""The `seqbench` command line: options derived from the declared settings (`options`), thin
commands that parse, call a recipe and print (`commands`: the run commands, compare, dash;
`recommend`, `export` and `sync`: using runs), and the app with its entry point."""

# importing a command module registers its commands on the app
from seqbench.cli import commands, export, recommend, sync  # noqa: F401
from seqbench.cli.app import app, main

__all__ = ["app", "main"]
