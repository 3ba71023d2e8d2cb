"""Typed run configuration: a TOML file from `configs/` plus command-line overrides.

Each TOML table (`[data]`, ...) maps onto one dataclass. Unknown keys and wrongly typed values
are errors that name the file, the table and the key, because a silently ignored typo in a
config is a wrong experiment. The resolved config is saved with every run and every cache.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench.errors import SeqbenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib


def default_cache_dir() -> Path:
    """Where prepared datasets and downloads live unless `--out`/`cache_dir` says otherwise."""
    env = os.environ.get("SEQBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "seqbench"


@dataclass
class DataConfig:
    """Which dataset, from which files, filtered how. Options that are None take the preset's."""

    dataset: str = "synthetic"
    source: list[str] = field(default_factory=list)
    min_user: int | None = None
    min_item: int | None = None
    dedupe: bool | None = None
    cache_dir: str | None = None
    download: bool = False
    # synthetic generator
    seed: int = 0
    users: int | None = None
    items: int = 1000
    mean_len: float = 20.0
    # generic reader
    user_col: str = "user"
    item_col: str = "item"
    time_col: str | None = None

    @property
    def cache_root(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()


@dataclass
class ModelConfig:
    """The encoder's shape (SASRec defaults of the CCE experiment: length 50, embedding 64)."""

    max_len: int = 50
    dim: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2

    def validate(self) -> None:
        _at_least("max_len", self.max_len, 2)
        _at_least("dim", self.dim, 1)
        _at_least("layers", self.layers, 1)
        _at_least("heads", self.heads, 1)
        if self.dim % self.heads:
            raise SeqbenchError(f"--dim ({self.dim}) must be divisible by --heads ({self.heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise SeqbenchError(f"--dropout must be in [0, 1), got {self.dropout}")


@dataclass
class TrainConfig:
    """How to train: loss, optimisation, schedule, device, and where runs are recorded."""

    loss: str = "ce"
    seed: int = 0
    epochs: int = 20  # configs/ presets set the published schedules (e.g. 200, patience 10)
    patience: int = 5
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    last_only: bool = False
    negatives: int = 256
    logq: bool = False
    filter_eps: str = "high"
    block_size: int | None = None
    device: str = "auto"
    bf16: bool = True
    max_batches: int | None = None
    time_limit_min: float | None = None  # stop after the epoch that crosses it; still tested
    runs_dir: str = "runs"

    def validate(self) -> None:
        _at_least("epochs", self.epochs, 1)
        _at_least("patience", self.patience, 1)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("negatives", self.negatives, 1)
        if self.block_size is not None:
            _at_least("block_size", self.block_size, 1)
        if self.max_batches is not None:
            _at_least("max_batches", self.max_batches, 1)
        if not self.lr > 0:
            raise SeqbenchError(f"--lr must be > 0, got {self.lr}")
        if self.time_limit_min is not None and not self.time_limit_min > 0:
            raise SeqbenchError(f"--time-limit must be > 0 minutes, got {self.time_limit_min}")
        if self.weight_decay < 0:
            raise SeqbenchError(f"--weight-decay must be >= 0, got {self.weight_decay}")


@dataclass
class EvalConfig:
    """How to evaluate: protocols (named next to every number), cut-offs, model selection."""

    protocols: list[str] = field(default_factory=lambda: ["full"])
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    exclude_seen: bool = True
    monitor: str = "NDCG@10"
    batch_size: int = 512
    sampled_seed: int = 0

    def validate(self) -> None:
        from seqbench.engine.evaluate import PROTOCOLS

        if not self.protocols:
            raise SeqbenchError("--protocol needs at least one of: " + ", ".join(PROTOCOLS))
        for protocol in self.protocols:
            if protocol not in PROTOCOLS:
                raise SeqbenchError(f"--protocol {protocol!r} is not one of: "
                                    f"{', '.join(PROTOCOLS)}")
        if not self.ks or min(self.ks) < 1:
            raise SeqbenchError(f"--k needs cut-offs >= 1, got {self.ks}")
        _at_least("batch_size", self.batch_size, 1)
        name, _, k = self.monitor.partition("@")
        if name not in ("HR", "NDCG") or not k.isdigit() or int(k) not in self.ks:
            raise SeqbenchError(f"--monitor must be HR@k or NDCG@k with k in --k "
                                f"{self.ks}, got {self.monitor!r}")


@dataclass
class PretrainConfig:
    """S3Rec pretraining (design.md section 5). Seed, device, bf16, runs_dir, max_batches and
    time_limit_min come from `[train]`; a task weight of 0 switches that task off."""

    epochs: int = 100
    batch_size: int = 100
    lr: float = 1e-3
    mask_prob: float = 0.2
    mask_last: bool = True  # as the original; False: the last item is masked like the others
    aap: float = 0.2
    mip: float = 1.0
    map: float = 1.0
    sp: float = 0.5
    lowrank: bool = False
    rank: int = 16
    lowrank_heads: str = "attributes"  # AAP and MAP; "all" adds MIP and SP
    checkpoint_every: int = 10

    @property
    def weights(self) -> dict[str, float]:
        return {"aap": self.aap, "mip": self.mip, "map": self.map, "sp": self.sp}

    def validate(self, dim: int) -> None:
        _at_least("epochs", self.epochs, 1)
        _at_least("batch_size", self.batch_size, 1)
        _at_least("checkpoint_every", self.checkpoint_every, 1)
        if not self.lr > 0:
            raise SeqbenchError(f"--lr must be > 0, got {self.lr}")
        if not 0.0 < self.mask_prob < 1.0:
            raise SeqbenchError(f"--mask-prob must be in (0, 1), got {self.mask_prob}")
        for task, weight in self.weights.items():
            if weight < 0:
                raise SeqbenchError(f"--{task}-weight must be >= 0, got {weight}")
        if not any(w > 0 for w in self.weights.values()):
            raise SeqbenchError("every pretraining task has weight 0: switch at least one on")
        if self.lowrank and not 1 <= self.rank <= dim:
            raise SeqbenchError(f"--rank must be in [1, --dim = {dim}], got {self.rank}")
        from seqbench.engine.s3rec import parse_lowrank_heads

        try:
            parse_lowrank_heads(self.lowrank_heads)
        except ValueError as exc:
            raise SeqbenchError(str(exc)) from None


@dataclass
class FinetuneConfig:
    """S3Rec fine-tuning: the loss (the paper's `bce` unless told otherwise); everything else
    comes from `[train]`, `[model]` and `[eval]`."""

    loss: str = "bce"


@dataclass
class RunConfig:
    """Everything a command needs; one field per TOML table."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def validate(self) -> None:
        self.model.validate()
        self.train.validate()
        self.eval.validate()
        self.pretrain.validate(self.model.dim)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(
    path: Path | None = None, overrides: dict[str, dict[str, Any]] | None = None
) -> RunConfig:
    """Read `path` (if given), then apply `overrides` ({table: {key: value}}; None values skip)."""
    tables: dict[str, Any] = {}
    origin = "command line"
    if path is not None:
        tables = read_toml(path)
        origin = str(path)
    config = RunConfig()
    for table_field in dataclasses.fields(RunConfig):
        section = getattr(config, table_field.name)
        values = tables.pop(table_field.name, {})
        if not isinstance(values, dict):
            raise SeqbenchError(f"{origin}: [{table_field.name}] must be a table")
        _apply(section, values, f"{origin} [{table_field.name}]")
        cli = {
            k: v for k, v in (overrides or {}).get(table_field.name, {}).items() if v is not None
        }
        _apply(section, cli, "command line")
    if tables:
        known = ", ".join(f"[{f.name}]" for f in dataclasses.fields(RunConfig))
        raise SeqbenchError(
            f"{origin}: unknown table or key {next(iter(tables))!r}; known tables: {known}"
        )
    return config


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


def _at_least(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise SeqbenchError(f"--{name.replace('_', '-')} must be >= {minimum}, got {value}")


def _apply(section: Any, values: dict[str, Any], where: str) -> None:
    hints = typing.get_type_hints(type(section))
    names = [f.name for f in dataclasses.fields(section)]
    for key, value in values.items():
        if key not in hints:
            raise SeqbenchError(f"{where}: unknown key {key!r}; known keys: {', '.join(names)}")
        setattr(section, key, _coerce(value, hints[key], f"{where}: {key}"))


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a simple type hint (int, float, str, bool, list[str], X | None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin is list:
        if not isinstance(value, list):
            raise SeqbenchError(f"{where} must be a list, got {value!r}")
        (inner,) = typing.get_args(hint)
        return [_coerce(v, inner, where) for v in value]
    if hint is bool:
        if not isinstance(value, bool):
            raise SeqbenchError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SeqbenchError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SeqbenchError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise SeqbenchError(f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint!r} for {where}")  # a bug, not user input
