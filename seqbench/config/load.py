"""From a TOML file, command-line values or a run's config.json to a checked `Plan` of runs.

Every source goes through the same declarations (`seqbench.config.run`): keys are checked against
them (an unknown key or a wrongly typed value is an error naming the file, table and key, because
a silently ignored typo is a wrong experiment), spellings of earlier releases are upgraded (with
a one-line warning when a user wrote them), and each problem names the setting where its value
came from: `--lr` on the command line, `exp.toml [train] lr` in a file.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seqbench.config.declare import Declared, declared_settings, is_optional, without_none
from seqbench.config.plan import Plan
from seqbench.config.run import RunConfig, value_problem
from seqbench.errors import SeqbenchError, SettingError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

COMMAND_LINE = "command line"
LEGACY_LOWRANK = "lowrank"  # [pretrain] lowrank = true|false with rank: now rank alone
LEGACY_RANK = 16  # the rank `lowrank = true` meant when no rank was given
#: facts about a fine-tuning's start that 0.1.0 recorded in [finetune]; now in [resolved]
LEGACY_PROVENANCE = ("pretrain_rank", "pretrain_variant", "pretrain_epoch")


def settings() -> tuple[Declared, ...]:
    return declared_settings(RunConfig)


def setting_at(path: str) -> Declared:
    for declared in settings():
        if declared.path == path:
            return declared
    raise KeyError(path)


def load_plan(path: Path | None = None,
              command_line: Mapping[str, Any] | None = None) -> Plan:
    """The runs asked for: `path` (a TOML file, if given), then `command_line` ({setting path:
    value}; a list for a sweep setting). Every value is checked; the first problem is raised."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if path is not None:
        _take_tables(read_toml(path), str(path), values, origins, warn=True)
    for key, value in (command_line or {}).items():
        declared = setting_at(key)
        values[declared.path] = _coerce(value, declared, f"{COMMAND_LINE}: {declared.flag}")
        origins[declared.path] = COMMAND_LINE
    return _plan(values, origins)


def load_config(path: Path | None = None,
                overrides: Mapping[str, Mapping[str, Any]] | None = None) -> RunConfig:
    """One run's configuration from a TOML file and `overrides` laid over it ({table: {key:
    value}} as a TOML file has them; None values are skipped), checked: for code that builds
    one run. Spellings of earlier releases work here too, with a warning."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if path is not None:
        _take_tables(read_toml(path), str(path), values, origins, warn=True)
    if overrides:
        _take_tables({table: dict(keys) for table, keys in overrides.items()}, COMMAND_LINE,
                     values, origins, warn=True, skip_none=True)
    plan = _plan(values, origins)
    if plan.sweeps:
        raise SeqbenchError(f"{', '.join(plan.sweeps)}: several values make several runs; "
                            f"use load_plan")
    return plan.config


def config_from_record(recorded: Mapping[str, Any], where: str = "config.json") -> RunConfig:
    """The configuration a run was started with, from its config.json (also one written by an
    earlier release: old spellings are read without warnings; the user did not write them)."""
    tables = {name: dict(recorded.get(name) or {}) for name in _table_names()}
    tables["finetune"] = {k: v for k, v in tables["finetune"].items()
                          if k not in LEGACY_PROVENANCE}
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    _take_tables(tables, where, values, origins, warn=False, skip_none=True)
    plan = _plan(values, origins)
    if plan.sweeps:  # a record holds one run
        raise SeqbenchError(f"{where}: {', '.join(plan.sweeps)} hold several values")
    return plan.config


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file (data only: nothing in it is executed)."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SeqbenchError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise SeqbenchError(f"{path}: is a directory, expected a TOML config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SeqbenchError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise SeqbenchError(f"{path}: not UTF-8 text, expected a TOML config file") from None


def where_named(declared: Declared, origin: str | None) -> str:
    """How a problem names a setting: its flag for the command line (and defaults), else the
    file, table and key its value came from."""
    if origin is None or origin == COMMAND_LINE:
        return declared.flag
    return f"{origin} [{declared.table}] {declared.key}"


# ---------------------------------------------------------------------------------------------


def _table_names() -> list[str]:
    return [f.name for f in dataclasses.fields(RunConfig)]


def _take_tables(tables: dict[str, Any], origin: str, values: dict[str, Any],
                 origins: dict[str, str], *, warn: bool, skip_none: bool = False) -> None:
    """Check the tables of a TOML file or a record against the declarations and take their
    values; `skip_none` for records, which write a None that the TOML files never hold."""
    known_tables = _table_names()
    for table, keys in tables.items():
        if table not in known_tables:
            raise SeqbenchError(f"{origin}: unknown table or key {table!r}; known tables: "
                                f"{', '.join(f'[{t}]' for t in known_tables)}")
        where = f"{origin} [{table}]"
        if not isinstance(keys, dict):
            raise SeqbenchError(f"{where} must be a table")
        keys = _upgrade(table, dict(keys), where, warn=warn)
        by_key = {d.key: d for d in settings() if d.table == table}
        for key, value in keys.items():
            declared = by_key.get(key) or _renamed(by_key, key, where, warn=warn)
            if declared is None:
                raise SeqbenchError(f"{where}: unknown key {key!r}; known keys: "
                                    f"{', '.join(by_key)}")
            if value is None and skip_none:
                continue
            values[declared.path] = _coerce(value, declared, f"{where}: {key}")
            origins[declared.path] = origin


def _renamed(by_key: dict[str, Declared], key: str, where: str, *, warn: bool
             ) -> Declared | None:
    """The setting an old key now spells differently (warned about once per file and key)."""
    for declared in by_key.values():
        if any(renamed.old == key for renamed in declared.setting.renamed):
            if warn:
                log.warning("%s: %r is deprecated and will stop working in the next release; "
                            "spell it %r (as the flag %s)", where, key, declared.key,
                            declared.flag)
            return declared
    return None


def _upgrade(table: str, keys: dict[str, Any], where: str, *, warn: bool) -> dict[str, Any]:
    """0.1.0 carried low-rank heads as `lowrank = true` beside `rank = 16`; now `rank` alone
    (none: full rank). `lowrank = false` made any recorded rank meaningless."""
    if table != "pretrain" or LEGACY_LOWRANK not in keys:
        return keys
    lowrank = keys.pop(LEGACY_LOWRANK)
    if warn:
        log.warning("%s: 'lowrank' is deprecated and will stop working in the next release; "
                    "'rank = R' alone makes the heads low-rank (leave it out for full rank)",
                    where)
    if not lowrank:
        keys.pop("rank", None)
    elif keys.get("rank") is None:
        keys["rank"] = LEGACY_RANK
    return keys


def _coerce(value: Any, declared: Declared, where: str) -> Any:
    """`value` checked against the setting's type; a sweep setting takes a list of them."""
    if declared.setting.sweep and isinstance(value, list):
        if not value:
            raise SeqbenchError(f"{where} needs at least one value")
        return [_coerce_one(v, declared.hint, where) for v in value]
    return _coerce_one(value, declared.hint, where)


def _coerce_one(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a simple type (int, float, str, bool, list[...], X | None)."""
    if value is None:
        if not is_optional(hint):
            raise SeqbenchError(f"{where} must not be empty")
        return None
    declared_type = without_none(hint)
    if typing.get_origin(declared_type) is list:
        (inner,) = typing.get_args(declared_type)
        if not isinstance(value, list):
            raise SeqbenchError(f"{where} must be a list, got {value!r}")
        return [_coerce_one(v, inner, where) for v in value]
    if declared_type is bool:
        if not isinstance(value, bool):
            raise SeqbenchError(f"{where} must be true or false, got {value!r}")
        return value
    if declared_type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SeqbenchError(f"{where} must be an integer, got {value!r}")
        return value
    if declared_type is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SeqbenchError(f"{where} must be a number, got {value!r}")
        return float(value)
    if declared_type is str:
        if isinstance(value, Path):
            return str(value)
        if not isinstance(value, str):
            raise SeqbenchError(f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported setting type {hint!r} for {where}")  # a bug, not user input


def _plan(values: dict[str, Any], origins: dict[str, str]) -> Plan:
    """The checked plan: each value against its setting's rule, then every run's rules between
    settings, each problem named where its value came from."""
    sweeps: dict[str, list[Any]] = {}
    single: dict[str, Any] = {}
    for path, value in values.items():
        declared = setting_at(path)
        candidates = value if declared.setting.sweep and isinstance(value, list) else [value]
        for candidate in candidates:
            problem = value_problem(declared, candidate)
            if problem is not None:
                raise SettingError(path, problem,
                                   name=where_named(declared, origins.get(path)))
        if declared.setting.sweep and isinstance(value, list):
            if len(value) > 1:
                sweeps[path] = list(value)
            single[path] = value[0]
        else:
            single[path] = value
    plan = Plan(RunConfig().replace(**single), sweeps, origins)
    for run in plan.runs():
        for problem in run.problems():
            declared = setting_at(problem.setting)
            raise problem.named(where_named(declared, origins.get(problem.setting)))
    return plan
