"""Errors a user can act on.

Everything raised as a `SeqbenchError` is printed by the CLI as one line (no traceback) and ends
the process with a non-zero exit code. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class SeqbenchError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class DataError(SeqbenchError):
    """A data file that cannot be read as the dataset says it should be.

    Names the file, and where known the line number and the offending line, so the user can
    open the file at the right place.
    """

    def __init__(
        self,
        path: Path | str,
        problem: str,
        *,
        line_no: int | None = None,
        line: str | bytes | None = None,
    ) -> None:
        self.path = Path(path)
        self.problem = problem
        self.line_no = line_no
        self.line = line
        where = f"{self.path}:{line_no}" if line_no is not None else f"{self.path}"
        message = f"{where}: {problem}"
        if line is not None:
            message += f": {_preview(line)}"
        super().__init__(message)


def _preview(line: str | bytes, limit: int = 120) -> str:
    """Show a line the way it is in the file: quoted, control characters escaped, shortened."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", errors="backslashreplace")
    line = line.rstrip("\r\n")
    text = repr(line[:limit])
    return text + ("..." if len(line) > limit else "")


class SettingError(SeqbenchError):
    """A setting of the run configuration has a value it cannot take.

    `setting` is its place in the configuration (`"train.lr"`), `problem` what is wrong
    (`"must be > 0, got inf"`). The message names the setting as the user gave it: its flag by
    default (`--lr must be > 0, got inf`), or the TOML file and key it came from, which the
    configuration loader fills in with `named`.
    """

    def __init__(self, setting: str, problem: str, *, name: str | None = None) -> None:
        self.setting = setting
        self.problem = problem
        self.name = name or flag_for(setting.rpartition(".")[2])
        super().__init__(f"{self.name} {problem}")

    def named(self, name: str) -> SettingError:
        """The same problem, naming the setting as `name` (e.g. `exp.toml [train] lr`)."""
        return SettingError(self.setting, self.problem, name=name)


def flag_for(key: str) -> str:
    """The command-line flag of a configuration key: `aap_weight` -> `--aap-weight`."""
    return "--" + key.replace("_", "-")
