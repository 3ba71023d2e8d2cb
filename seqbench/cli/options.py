"""Typer options derived from the declared settings: one option per setting a command offers,
plus the few options that are not settings (`--config`, `--resume`, `pretrain --finetune`).

Nothing here names a setting: flags, help, panels and types all come from the declarations
in `seqbench.config.run`, so a command and its configuration cannot disagree. Values given on
the command line are parsed here (comma lists, sweeps, `full` for no rank) and handed to the
configuration, which checks them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from seqbench.config import Declared, Plan, RunConfig, load_plan, setting_at, settings_of
from seqbench.config.declare import PRETRAIN, Renamed
from seqbench.config.load import LEGACY_RANK
from seqbench.errors import SeqbenchError, SettingError

log = logging.getLogger("seqbench")

_SETTING, _EXTRA, _OLD = "s__", "x__", "old__"


@dataclass(frozen=True)
class Extra:
    """A command-line option that is not a setting of the runs: what the command does."""

    name: str
    flags: tuple[str, ...]
    help: str
    hint: Any  # its Typer type
    panel: str | None = None
    metavar: str | None = None


CONFIG = Extra("config", ("--config", "-c"), "TOML file of settings (see configs/; keys are "
               "spelled as the flags, in their tables); options on the command line override "
               "it.", Path | None, metavar="FILE")
RESUME = Extra("resume", ("--resume",), "Continue this killed, interrupted or time-limited run "
               "from its last checkpoint with its recorded settings; only --time-limit (a new "
               "limit, minutes over the whole run) and --threads may change.", Path | None,
               panel="Training", metavar="RUN")
AS_JSON = Extra("json", ("--json",), "Print the cached meta.json (statistics, options, "
                "sources, the split's cut-offs and counts) instead of the table.", bool)
THEN_FINETUNE = Extra("finetune", ("--finetune",), "Fine-tune each pretrained model at once "
                      "(with the [train], [eval] and [finetune] settings of --config) and print "
                      "both protocols.", bool, panel="S3Rec")


#: the options of each run command that are not settings
EXTRAS: dict[str, tuple[Extra, ...]] = {"prep": (CONFIG, AS_JSON), "bench": (CONFIG, RESUME),
                                        "pretrain": (CONFIG, RESUME, THEN_FINETUNE),
                                        "finetune": (CONFIG, RESUME)}

#: `pretrain --lowrank/--full-rank` of 0.1.0: low-rank heads are now `--rank R` alone
LOWRANK_FLAGS, LOWRANK_COMMANDS = "--lowrank/--full-rank", (PRETRAIN,)


@dataclass
class Given:
    """What a run command was given: settings by path (a list for a sweep) and its extras."""

    command: str
    settings: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def plan(self) -> Plan:
        """The checked runs: --config, then the command line over it."""
        return load_plan(self.extras.get("config"), self.settings)

    def resume_changes(self, allowed: Sequence[str]) -> dict[str, Any]:
        """The settings `--resume` may change; the others given are ignored, with a warning."""
        ignored = [setting_at(path).flag for path in self.settings if path not in allowed]
        if self.extras.get("config") is not None:
            ignored.insert(0, "--config")
        if ignored:
            log.warning("ignored with --resume (the run keeps its recorded settings): %s",
                        ", ".join(ignored))
        return {path: value for path, value in self.settings.items() if path in allowed}


def command_function(command: str, body: Callable[[Given], None]) -> Callable[..., None]:
    """A function Typer turns into `command`: its signature lists every option (settings the
    command offers, then its `EXTRAS`, then hidden spellings of earlier releases)."""
    declared = list(settings_of(RunConfig, command))
    extras = EXTRAS[command]
    renamed = [(d, r) for d in declared for r in d.setting.renamed
               if r.old.startswith("-") and command in r.commands]
    legacy = command in LOWRANK_COMMANDS
    parameters = [_setting_parameter(d) for d in declared]
    parameters += [_extra_parameter(extra) for extra in extras]
    parameters += [_renamed_parameter(i, d, r) for i, (d, r) in enumerate(renamed)]
    if legacy:
        parameters.append(_parameter(f"{_OLD}lowrank", bool | None, typer.Option(
            LOWRANK_FLAGS, hidden=True)))

    def run(**values: Any) -> None:
        given = Given(command)
        for item in declared:
            value = values[_SETTING + _name(item)]
            if value is not None and value != []:
                given.settings[item.path] = parse_given(item, value)
        for i, (item, old) in enumerate(renamed):
            value = values[f"{_OLD}{i}"]
            if value is not None:
                _take_renamed(given, item, old, parse_given(item, value))
        if legacy and values[f"{_OLD}lowrank"] is not None:
            _take_lowrank(given, values[f"{_OLD}lowrank"])
        given.extras = {extra.name: values[_EXTRA + extra.name] for extra in extras}
        body(given)

    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__name__ = command
    return run


def parse_given(declared: Declared, value: Any) -> Any:
    """A command-line value as the configuration takes it: a comma list split and typed (each
    value of a sweep one run), `none_word` as None, anything else as given."""
    if not isinstance(value, str) or not _as_text(declared):
        return [str(v) for v in value] if isinstance(value, list) else value
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts:
        raise SettingError(declared.path, "needs at least one value")
    kind = declared.value_type
    try:
        values = [None if part == declared.setting.none_word else kind(part) for part in parts]
    except ValueError:
        raise SettingError(declared.path, f"expects comma-separated {kind.__name__} values, "
                                          f"got {value!r}") from None
    if declared.is_list or (declared.setting.sweep and len(values) > 1):
        return values
    return values[0]


def help_text(declared: Declared) -> str:
    """--help of a setting: its help, its choices and its default (plain text; escaped for
    Rich markup where it is shown)."""
    setting = declared.setting
    text = setting.help
    if setting.choices:
        text += " " + "; ".join(f"{name}: {what}" for name, what in setting.choices.items()) + "."
    shown = default_text(declared)
    if shown:
        text += f" (default: {shown})"
    return text


def default_text(declared: Declared) -> str:
    """How --help and the reference show a setting's default."""
    if declared.setting.default_text is not None:
        return declared.setting.default_text
    default = declared.default
    if declared.is_flag:
        return declared.flag if default else declared.off_flag
    if isinstance(default, list):
        return ",".join(str(v) for v in default)
    return "" if default is None else f"{default:g}" if isinstance(default, float) else str(
        default)


def cli_flags(declared: Declared) -> tuple[str, ...]:
    """The option's spellings as Typer declares them (a switch as `--on/--off`)."""
    if declared.is_flag:
        return (f"{declared.flag}/{declared.off_flag}",)
    return declared.flags


# ---------------------------------------------------------------------------------------------


def _name(declared: Declared) -> str:
    return declared.path.replace(".", "__")


def _as_text(declared: Declared) -> bool:
    """Options taken as text and parsed here: comma lists, sweeps, and a `none_word`."""
    setting = declared.setting
    return (declared.is_list and not setting.repeat) or setting.sweep or bool(setting.none_word)


def _cli_type(declared: Declared) -> Any:
    if declared.is_flag:
        return bool | None
    if declared.setting.repeat:
        return list[str] | None
    if _as_text(declared):
        return str | None
    return declared.value_type | None


def _setting_parameter(declared: Declared) -> inspect.Parameter:
    setting = declared.setting
    metavar = setting.metavar
    if metavar is None and _as_text(declared):
        metavar = "LIST" if declared.is_list or setting.sweep else None
    metavar = None if metavar is None else f"<{metavar.lower()}>"
    option = typer.Option(*cli_flags(declared), help=escape(help_text(declared)),
                          rich_help_panel=setting.panel, metavar=metavar, show_default=False)
    return _parameter(_SETTING + _name(declared), _cli_type(declared), option)


def _extra_parameter(extra: Extra) -> inspect.Parameter:
    option = typer.Option(*extra.flags, help=escape(extra.help), rich_help_panel=extra.panel,
                          metavar=extra.metavar and f"<{extra.metavar.lower()}>",
                          show_default=False,
                          **({"dir_okay": False} if extra.name == "config" else {}))
    return _parameter(_EXTRA + extra.name, extra.hint, option,
                      default=False if extra.hint is bool else None)


def _renamed_parameter(index: int, declared: Declared, renamed: Renamed) -> inspect.Parameter:
    return _parameter(f"{_OLD}{index}", _cli_type(declared),
                      typer.Option(renamed.old, hidden=True))


def _parameter(name: str, hint: Any, option: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                             annotation=Annotated[hint, option], default=default)


def _take_renamed(given: Given, declared: Declared, renamed: Renamed, value: Any) -> None:
    log.warning("%s is deprecated and will stop working in the next release; use %s",
                renamed.old, declared.flag)
    if declared.path in given.settings:
        raise SeqbenchError(f"{renamed.old} and {declared.flag} are the same option; give "
                            f"{declared.flag} alone")
    given.settings[declared.path] = value


def _take_lowrank(given: Given, lowrank: bool) -> None:
    """--lowrank: the heads are low-rank (rank 16 unless --rank says); --full-rank: not."""
    log.warning("--lowrank and --full-rank are deprecated and will stop working in the next "
                "release: --rank R alone makes the heads low-rank (without it they are "
                "full-rank)")
    rank = given.settings.get("pretrain.rank")
    if not lowrank and rank is not None:
        raise SeqbenchError("--full-rank contradicts --rank; leave out --rank for full rank")
    if lowrank and rank is None:
        given.settings["pretrain.rank"] = LEGACY_RANK

