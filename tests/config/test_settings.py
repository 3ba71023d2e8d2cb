"""Each setting is declared once, and every way of giving it agrees with that declaration:
its flag on each command that offers it, its TOML key, config.json, and the commands' options."""

from __future__ import annotations

import dataclasses
import logging
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from seqbench.cli import app
from seqbench.cli.options import EXTRAS, Given, command_function
from seqbench.config import (
    Declared,
    RunConfig,
    config_from_record,
    load_config,
    load_plan,
    setting_at,
    settings,
    settings_of,
)
from seqbench.config.declare import RUN_COMMANDS
from seqbench.errors import SeqbenchError, SettingError
from tests.conftest import write

#: a valid value other than the default, for the settings whose type alone cannot give one;
#: a new text or list setting needs an entry here (the test says so)
OTHER = {
    "data.dataset": "ml-1m", "data.source": ["a.csv", "b.csv"], "data.data_dir": "/tmp/cache",
    "data.user_col": "u", "data.item_col": "i", "data.time_col": "t",
    "model.dim": 32, "model.heads": 4, "model.dropout": 0.5,
    "train.loss": "cce", "train.filter_eps": "none", "train.device": "cpu",
    "train.runs_dir": "elsewhere",
    "eval.protocol": ["sampled-99", "full", "sampled-file"], "eval.k": [10, 20],
    "eval.monitor": "HR@10",
    "eval.negatives_file": "negatives.txt",
    "data.split": "temporal", "data.valid_time": "2018-01-01T00:00:00",
    "data.test_time": "2019-01-01",
    "data.valid_frac": 0.2, "data.test_frac": 0.15,
    "pretrain.mask_prob": 0.3, "pretrain.rank": 8, "pretrain.lowrank_heads": "all",
    "finetune.loss": "ce", "finetune.init_from": "runs/pre",
}


#: settings that are only valid together with others (given alongside them in the tests)
COMPANIONS: dict[str, dict[str, Any]] = {
    "data.split": {},
    "data.valid_time": {"data.split": "temporal", "data.test_time": "2019-06-01"},
    "data.test_time": {"data.split": "temporal", "data.valid_time": "2018-01-01"},
    "data.valid_frac": {"data.split": "temporal", "data.test_frac": 0.1},
    "data.test_frac": {"data.split": "temporal", "data.valid_frac": 0.1},
    "eval.negatives_file": {"eval.protocol": ["sampled-file"]},
    "eval.protocol": {"eval.negatives_file": "negatives.txt"},
}


def other_value(declared: Declared) -> Any:
    """A valid, non-default value of `declared`."""
    if declared.path in OTHER:
        return OTHER[declared.path]
    kind = declared.value_type
    if kind is bool:
        return not declared.default if declared.default is not None else True
    if kind is int:
        return 3 if declared.default is None else declared.default + 1
    if kind is float:
        return 2.5 if declared.default is None else declared.default * 2 + 1
    raise AssertionError(f"{declared.path}: add a non-default example value to OTHER")


def command_line(declared: Declared, value: Any) -> list[str]:
    """How a user types `value` for `declared`."""
    if declared.is_flag:
        return [declared.flag if value else declared.off_flag]
    if declared.setting.repeat:
        return [part for item in value for part in (declared.flag, str(item))]
    if isinstance(value, list):
        return [declared.flag, ",".join(str(v) for v in value)]
    return [declared.flag, str(value)]


def given(command: str, *args: str) -> Given:
    """What `seqbench COMMAND ARGS` hands its body (the options are those the app derives)."""
    seen: list[Given] = []
    probe = typer.Typer()
    probe.command(name=command)(command_function(command, seen.append))
    probe.command(name="unused")(lambda: None)  # two commands: the name is matched
    probe(args=[command, *args], standalone_mode=False)
    return seen[0]


def toml_text(values: dict[str, Any]) -> str:
    lines = []
    for table in sorted({path.split(".")[0] for path in values}):
        lines.append(f"[{table}]")
        for path, value in values.items():
            if path.startswith(table + "."):
                lines.append(f"{path.split('.')[1]} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


@pytest.mark.parametrize("declared", settings(), ids=lambda d: d.path)
def test_every_setting_is_reachable_by_flag_and_by_toml_and_round_trips(
        declared: Declared, tmp_path: Path) -> None:
    value = other_value(declared)
    assert value != declared.default
    assert declared.setting.commands, f"{declared.path} belongs to no command"
    companions = COMPANIONS.get(declared.path, {})
    extra = [part for path, other in companions.items()
             for part in command_line(setting_at(path), other)]
    for command in declared.setting.commands:
        options = given(command, *command_line(declared, value), *extra)
        assert options.settings == {declared.path: value, **companions}, command
        config = options.plan().config
        assert config.get(declared.path) == value, command
    config = load_config(write(tmp_path / "c.toml",
                               toml_text({declared.path: value, **companions})))
    assert config.get(declared.path) == value
    assert config_from_record(config.to_dict()) == config  # config.json -> --resume


def test_every_setting_round_trips_through_config_json_at_once() -> None:
    values = {d.path: other_value(d) for d in settings()}
    values["data.download"] = False  # excludes --source
    values["data.valid_frac"] = values["data.test_frac"] = None  # exclude the cut-off times
    config = RunConfig().replace(**values)
    config.validate()
    assert config_from_record(config.to_dict()) == config
    assert config != RunConfig()


@pytest.mark.parametrize("command", RUN_COMMANDS)
def test_each_command_offers_exactly_its_settings_and_extras(command: str) -> None:
    """The registered command and the declarations agree: every option it has is a setting of
    the command or one of its extras (or an earlier spelling, hidden), and vice versa."""
    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    shown = {name for param in click_command.params if param.param_type_name == "option"
             and not param.hidden for name in (*param.opts, *param.secondary_opts)}
    expected: set[str] = set()
    for declared in settings_of(RunConfig, command):
        expected.update(declared.flags)
        if declared.is_flag:
            expected.add(declared.off_flag)
    for extra in EXTRAS[command]:
        expected.update(extra.flags)
    assert shown == expected


def test_flags_and_toml_keys_are_spelled_alike() -> None:
    for declared in settings():
        assert declared.flag == "--" + declared.key.replace("_", "-")


def test_no_two_settings_of_a_command_share_a_flag() -> None:
    for command in RUN_COMMANDS:
        flags = [flag for d in settings_of(RunConfig, command) for flag in d.flags]
        assert len(flags) == len(set(flags)), command


def test_sweeps_expand_in_a_fixed_order_whatever_the_order_given() -> None:
    plan = load_plan(None, {"train.seed": [1, 2], "train.loss": ["ce", "cce"]})
    assert [(c.train.loss, c.train.seed) for c in plan.runs()] == [
        ("ce", 1), ("ce", 2), ("cce", 1), ("cce", 2)]
    assert given("bench", "--seed", "1,2", "--loss", "ce,cce").settings == {
        "train.seed": [1, 2], "train.loss": ["ce", "cce"]}
    ranks = load_plan(None, {"pretrain.rank": [None, 4]})
    assert [c.pretrain.rank for c in ranks.runs()] == [None, 4]
    assert given("pretrain", "--rank", "full,4").settings == {"pretrain.rank": [None, 4]}


def test_a_toml_list_sweeps_like_a_comma_list(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[train]\nloss = ["ce", "cce"]\nseed = [1, 2]\n')
    assert len(load_plan(path).runs()) == 4


def test_problems_name_the_setting_where_its_value_came_from(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match=r"^--lr must be > 0 and finite, got inf$"):
        load_plan(None, {"train.lr": math.inf})
    path = write(tmp_path / "exp.toml", "[train]\nlr = inf\n")
    with pytest.raises(SettingError, match=r"exp\.toml \[train\] lr must be > 0 and finite"):
        load_plan(path)
    path = write(tmp_path / "shape.toml", "[model]\ndim = 30\nheads = 4\n")
    with pytest.raises(SettingError, match=r"shape\.toml \[model\] dim \(30\) must be divisible"):
        load_plan(path)
    with pytest.raises(SettingError, match=r"^--rank must be in \[1, --dim = 8\], got 16$"):
        load_plan(None, {"model.dim": 8, "pretrain.rank": [4, 16]})  # each run of a sweep


@pytest.mark.parametrize(("values", "message"), [
    ({"data.users": 0}, "--users must be >= 1"),
    ({"data.items": 1}, "--items must be >= 2"),
    ({"data.mean_len": 2.5}, "--mean-len must be >= 3"),
    ({"data.mean_len": math.nan}, "--mean-len must be >= 3"),
    ({"data.mean_len": math.inf}, "--mean-len must be >= 3"),
    ({"data.data_seed": -1}, "--data-seed must be >= 0"),
    ({"data.min_user": -1}, "--min-user must be >= 0"),
    ({"data.source": ["a.csv"], "data.download": True}, "--download and --source exclude"),
    ({"train.seed": -1}, "--seed must be >= 0"),
    ({"train.weight_decay": math.inf}, "--weight-decay must be >= 0"),
    ({"train.threads": 0}, "--threads must be >= 1"),
    ({"train.device": "tpu9"}, "--device 'tpu9' is not a device"),
    ({"eval.protocol": []}, "--protocol needs at least one of: full, sampled-99"),
    ({"pretrain.lowrank_heads": "aap,xyz"}, "--lowrank-heads expects 'attributes'"),
])
def test_bad_values_are_named_by_their_flag(values: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingError, match=f"^{message}"):
        load_plan(None, values)


@pytest.mark.parametrize(("text", "expected"), [
    ("high", "high"), ("auto", "auto"), ("HIGH", "high"), ("none", None), ("off", None),
    ("1e-5", 1e-5), ("0", 0.0), (" 0.0002 ", 2e-4),
])
def test_parse_filter_eps(text: str, expected: float | str | None) -> None:
    from seqbench.config.checks import parse_filter_eps

    assert parse_filter_eps(text) == expected


@pytest.mark.parametrize("text", ["", "low", "-1e-3", "nan", "inf"])
def test_filter_eps_rejects(text: str) -> None:
    with pytest.raises(SettingError, match=r"^--filter-eps must be 'high', 'auto'"):
        load_plan(None, {"train.filter_eps": text})


def test_comma_lists_of_the_wrong_type_name_the_flag() -> None:
    with pytest.raises(SettingError, match=r"^--seed expects comma-separated int values, got "
                                           r"'1,x'$"):
        given("bench", "--seed", "1,x")
    with pytest.raises(SettingError, match=r"^--k expects comma-separated int values"):
        given("finetune", "--k", "5,ten")


def test_old_toml_keys_still_work_with_a_one_line_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "old.toml", "[data]\ncache_dir = \"/tmp/c\"\nseed = 3\n"
                 "[train]\ntime_limit_min = 5.0\n[eval]\nprotocols = [\"sampled-99\"]\n"
                 "ks = [10]\nbatch_size = 64\n[pretrain]\naap = 0.5\nlowrank = true\n")
    with caplog.at_level(logging.WARNING):
        config = load_config(path)
    assert (config.data.data_dir, config.data.data_seed, config.train.time_limit) == (
        "/tmp/c", 3, 5.0)
    assert (config.eval.protocol, config.eval.k, config.eval.eval_batch_size) == (
        ["sampled-99"], [10], 64)
    assert (config.pretrain.aap_weight, config.pretrain.rank) == (0.5, 16)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 8 and all("\n" not in w and "deprecated" in w for w in warnings)
    assert any("'ks' is deprecated" in w and "'k'" in w and "--k" in w for w in warnings)


def test_lowrank_false_of_an_old_record_means_full_rank() -> None:
    recorded = RunConfig().to_dict()
    del recorded["pretrain"]["rank"]
    recorded["pretrain"].update(lowrank=False, rank=16)
    assert config_from_record(recorded).pretrain.rank is None
    recorded["pretrain"].update(lowrank=True, rank=4)
    assert config_from_record(recorded).pretrain.rank == 4


def test_old_flags_still_work_with_a_one_line_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert given("prep", "--out", "/tmp/c", "--seed", "4").settings == {
            "data.data_dir": "/tmp/c", "data.data_seed": 4}
        assert given("prep", "-o", "/tmp/c").settings == {"data.data_dir": "/tmp/c"}
        assert given("pretrain", "--lowrank").settings == {"pretrain.rank": 16}
        assert given("pretrain", "--lowrank", "--rank", "4").settings == {"pretrain.rank": 4}
        assert given("pretrain", "--full-rank").settings == {}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith("--out is deprecated") and "--data-dir" in w for w in warnings)
    assert any(w.startswith("--seed is deprecated") and "--data-seed" in w for w in warnings)
    assert any("--lowrank" in w and "--rank R" in w for w in warnings)
    with pytest.raises(SeqbenchError, match="--full-rank contradicts --rank"):
        given("pretrain", "--full-rank", "--rank", "4")
    with pytest.raises(SeqbenchError, match="--out and --data-dir are the same option"):
        given("prep", "--out", "a", "--data-dir", "b")


def test_shipped_configs_use_todays_spellings(caplog: pytest.LogCaptureFixture) -> None:
    configs = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))
    assert configs
    with caplog.at_level(logging.WARNING):
        for path in configs:
            load_config(path)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_configuration_imports_no_engine() -> None:
    """config sits below the engine: validating options needs no torch (and imports fast)."""
    code = ("import sys; import seqbench.config, seqbench.vocabulary; "
            "print(sorted(m for m in sys.modules if m.startswith(('torch', 'seqbench.engine'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]"


@dataclasses.dataclass
class _Undeclared:
    plain: int = 1


@dataclasses.dataclass
class _Root:
    table: _Undeclared = dataclasses.field(default_factory=_Undeclared)


def test_a_table_field_without_a_setting_is_refused() -> None:
    from seqbench.config.declare import declared_settings

    with pytest.raises(TypeError, match=r"_Undeclared\.plain is not declared with setting"):
        declared_settings(_Root)
