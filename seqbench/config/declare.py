"""How a setting is declared: one dataclass field carries its flag, help, commands and rule.

Every option of the run commands is a field of one table of the run configuration
(`seqbench.config.run`). Its `Setting` says which commands offer it, how `--help` explains it,
how its value is checked and which earlier spellings still work. The Typer commands, their
`--help`, the TOML keys, `config.json`, `--resume` and docs/reference.md are all derived from
these fields, so adding an option is one declaration plus the code that uses it
(docs/architecture.md, "Adding an option").

Spelling: a TOML key is spelled as its flag, `aap_weight` <-> `--aap-weight`, in the table the
field belongs to (`[pretrain] aap_weight`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from seqbench.errors import flag_for

#: a value's problem in words ("must be >= 1, got 0"), or None when the value is fine
Check = Callable[[Any], "str | None"]

PREP, BENCH, PRETRAIN, FINETUNE = "prep", "bench", "pretrain", "finetune"
RUN_COMMANDS = (PREP, BENCH, PRETRAIN, FINETUNE)
TRAINING = (BENCH, PRETRAIN, FINETUNE)
NEXT_ITEM = (BENCH, FINETUNE)


@dataclass(frozen=True)
class Renamed:
    """A spelling of an earlier release that keeps working for now, with a warning."""

    old: str  # a TOML key ("protocols") or a flag ("--out")
    commands: tuple[str, ...] = RUN_COMMANDS  # for a flag: the commands that had it


@dataclass(frozen=True)
class Setting:
    """What a field of the run configuration is to its users (see the module docstring)."""

    help: str
    commands: tuple[str, ...]
    panel: str
    check: Check | None = None
    #: the values it may take, each with a few words for --help (validated in order given)
    choices: Mapping[str, str] | None = None
    short: str | None = None  # a one-letter flag, e.g. "-l"
    aliases: tuple[str, ...] = ()  # other long flags, e.g. "--from"
    off_flag: str | None = None  # a boolean's "no" flag; default --no-<key>
    #: the command line takes a comma list and runs once per value (`--seed 1,2,3`); a TOML
    #: file may give a list too
    sweep: bool = False
    repeat: bool = False  # a list given by repeating the flag (`--source a --source b`)
    none_word: str | None = None  # the word that sets it to None on the command line ("full")
    metavar: str | None = None
    default_text: str | None = None  # what --help says when the default is None
    renamed: tuple[Renamed, ...] = ()
    #: may be given with --resume (replacing the recorded value); others are ignored there
    on_resume: bool = False


@dataclass(frozen=True)
class Declared:
    """One declared setting: where it lives in the configuration and how it is spelled."""

    table: str
    key: str
    hint: Any  # the field's type, e.g. `int | None`, `list[str]`
    default: Any
    setting: Setting

    @property
    def path(self) -> str:
        return f"{self.table}.{self.key}"

    @property
    def flag(self) -> str:
        return flag_for(self.key)

    @property
    def flags(self) -> tuple[str, ...]:
        """Every spelling on the command line, the main flag first."""
        return (self.flag, *self.setting.aliases, *(() if not self.setting.short
                                                     else (self.setting.short,)))

    @property
    def off_flag(self) -> str:
        return self.setting.off_flag or "--no-" + self.flag.removeprefix("--")

    @property
    def optional(self) -> bool:
        return is_optional(self.hint)

    @property
    def value_type(self) -> Any:
        """The type of one value: `int` for `int | None`, `list[int]` and a sweep of ints."""
        hint = without_none(self.hint)
        return typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint

    @property
    def is_list(self) -> bool:
        return typing.get_origin(without_none(self.hint)) is list

    @property
    def is_flag(self) -> bool:
        """A boolean switch (`--bf16/--no-bf16`)."""
        return self.value_type is bool and not self.is_list

    def takes(self, command: str) -> bool:
        return command in self.setting.commands


def setting(default: Any, **declaration: Any) -> Any:
    """A dataclass field declared as a setting: `lr: float = setting(1e-3, help=..., ...)`."""
    metadata = {"setting": Setting(**declaration)}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@cache
def declared_settings(root: type) -> tuple[Declared, ...]:
    """Every setting of the configuration class `root` (a dataclass of table dataclasses), in
    declaration order: table by table, field by field."""
    found = []
    for table in dataclasses.fields(root):
        table_type = typing.get_type_hints(root)[table.name]
        hints = typing.get_type_hints(table_type)
        for item in dataclasses.fields(table_type):
            declaration = item.metadata.get("setting")
            if declaration is None:
                raise TypeError(f"{table_type.__name__}.{item.name} is not declared with "
                                f"setting(...)")
            default = (item.default_factory() if item.default_factory is not dataclasses.MISSING
                       else item.default)
            found.append(Declared(table.name, item.name, hints[item.name], default, declaration))
    return tuple(found)


def settings_of(root: type, command: str) -> Iterator[Declared]:
    """The settings a command offers, in declaration order."""
    return (d for d in declared_settings(root) if d.takes(command))


def is_optional(hint: Any) -> bool:
    """`X | None`."""
    return (typing.get_origin(hint) in (typing.Union, types.UnionType)
            and type(None) in typing.get_args(hint))


def without_none(hint: Any) -> Any:
    """`X` for `X | None`; any other hint as it is."""
    if not is_optional(hint):
        return hint
    (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return inner
