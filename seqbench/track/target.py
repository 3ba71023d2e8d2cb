"""What every tracker target does, and what it reports back for one run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from seqbench.errors import SeqbenchError
from seqbench.fsutil import check_creatable
from seqbench.track.records import RunRecord


@dataclass
class Outcome:
    """What one sync wrote for one run in one tracker."""

    target: str  # "MLflow" or "TensorBoard"
    new_epochs: int  # epochs written now
    had_epochs: int  # epochs the tracker already had
    final_written: bool  # test metrics and summary written now
    created: bool  # the run is new in this tracker

    def describe(self) -> str:
        """`+2 epochs (1 there)`, `+summary`, `up to date`: one cell of the summary table."""
        parts = []
        if self.created:
            parts.append("new")
        if self.new_epochs:
            parts.append(f"+{self.new_epochs} epoch{'s' if self.new_epochs != 1 else ''}")
        if self.final_written:
            parts.append("+summary")
        text = ", ".join(parts) if parts else "up to date"
        return f"{text} ({self.had_epochs} there)" if self.had_epochs else text


class Target(Protocol):
    """A tracker to write runs to. `check` looks without writing (a bad target fails before any
    run is written anywhere); `connect` reaches it; `sync` writes what it lacks of one run."""

    name: str

    def check(self, records: list[RunRecord]) -> None: ...

    def connect(self) -> None: ...

    def sync(self, record: RunRecord) -> Outcome: ...


def check_creatable_dir(path: Path, what: str) -> None:
    """Fail (one line, starting with `what`) unless `path` is a directory this process can
    write in, or one it could create, without creating anything."""
    if Path(path).is_dir():
        check_creatable(Path(path) / ".probe", what)
    elif Path(path).exists():
        raise SeqbenchError(f"{what}: {path} is a file, not a directory")
    else:
        check_creatable(path, what)
