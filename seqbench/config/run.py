"""The run configuration: every setting of prep, bench, pretrain and finetune, declared once.

Each table (`[data]`, `[model]`, ...) is a dataclass; each field a setting with its flag, help,
commands and rule (`seqbench.config.declare`). A TOML key is spelled as its flag, in the table
of its field. Rules that involve two settings (dim and heads, the monitored k and the cut-offs,
rank and dim) are the tables' `problems`. The whole configuration is recorded in every run's
config.json and read back from it by `--resume`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqbench.config import checks
from seqbench.config.declare import (
    BENCH,
    FINETUNE,
    NEXT_ITEM,
    PRETRAIN,
    RUN_COMMANDS,
    TRAINING,
    Declared,
    Renamed,
    declared_settings,
    setting,
)
from seqbench.errors import SettingError, flag_for
from seqbench.vocabulary import LOSSES, PROTOCOLS

DATA, SPLIT, SYNTH, GENERIC = "Data", "Split", "Synthetic data", "Generic data"
#: how users' interactions are split into training, validation and test (docs/datasets.md)
SPLITS = {
    "loo": "leave-one-out, each user's last item is the test target and the one before it "
           "the validation target",
    "temporal": "two global cut-off times, training strictly before the first (give "
                "--valid-time/--test-time or --valid-frac/--test-frac; default 0.1 and 0.1)",
}
DEFAULT_FRACTION = 0.1  # temporal without cut-offs: the last 10% test, the 10% before valid
MODEL, TRAIN, EVAL, S3REC = "Model", "Training", "Evaluation", "S3Rec"

SYNTHETIC_MIN_MEAN_LEN = 3  # every generated sequence survives a 3-core user filter


def default_cache_dir() -> Path:
    """Where prepared datasets and downloads live unless `--data-dir` says otherwise."""
    env = os.environ.get("SEQBENCH_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "seqbench"


def _known_dataset(name: str) -> str | None:
    from seqbench.data.presets import PRESETS  # data imports this module: import when used

    if name in PRESETS:
        return None
    return f"names an unknown dataset {name!r}; known datasets: {', '.join(PRESETS)}"


def _cutoffs(ks: list[int]) -> str | None:
    return None if ks and min(ks) >= 1 else f"needs cut-offs >= 1, got {ks}"


def _dataset_help() -> str:
    from seqbench.data.presets import PRESETS

    return f"One of: {', '.join(PRESETS)}."


@dataclass
class DataConfig:
    """Which dataset, from which files, filtered how; None takes the dataset preset's value."""

    dataset: str = setting(
        "synthetic", help=_dataset_help(), commands=RUN_COMMANDS, panel=DATA, short="-d",
        check=_known_dataset)
    source: list[str] = setting(
        [], help="Raw file, or a directory holding the dataset's files (repeat the option for "
        "datasets with several files).", commands=RUN_COMMANDS, panel=DATA, short="-s",
        repeat=True, metavar="PATH")
    download: bool = setting(
        False, help="Fetch the dataset's official files first (resumable, checksums checked).",
        commands=RUN_COMMANDS, panel=DATA)
    data_dir: str | None = setting(
        None, help="Dataset cache directory.", commands=RUN_COMMANDS, panel=DATA,
        metavar="DIR", default_text="$SEQBENCH_CACHE or ~/.cache/seqbench",
        renamed=(Renamed("cache_dir"), Renamed("--out", ("prep",)), Renamed("-o", ("prep",))))
    min_user: int | None = setting(
        None, help="Keep users with at least N interactions (iterative k-core).",
        commands=RUN_COMMANDS, panel=DATA, check=checks.at_least(0), metavar="N",
        default_text="the dataset's")
    min_item: int | None = setting(
        None, help="Keep items with at least N interactions (iterative k-core).",
        commands=RUN_COMMANDS, panel=DATA, check=checks.at_least(0), metavar="N",
        default_text="the dataset's")
    dedupe: bool | None = setting(
        None, help="Drop repeated (user, item) pairs, keeping the first.", commands=RUN_COMMANDS,
        panel=DATA, off_flag="--keep-duplicates", default_text="the dataset's")
    split: str = setting(
        "loo", help="How to split users' interactions into training, validation and test.",
        commands=RUN_COMMANDS, panel=SPLIT, choices=SPLITS)
    valid_time: str | None = setting(
        None, help="Temporal split: validation starts here (unix seconds or an ISO date, UTC).",
        commands=RUN_COMMANDS, panel=SPLIT, check=checks.parses(checks.parse_time),
        metavar="TIME")
    test_time: str | None = setting(
        None, help="Temporal split: test starts here (at or after --valid-time).",
        commands=RUN_COMMANDS, panel=SPLIT, check=checks.parses(checks.parse_time),
        metavar="TIME")
    valid_frac: float | None = setting(
        None, help="Temporal split: the share of all interactions, just before the test "
        "window, that is the validation window.", commands=RUN_COMMANDS, panel=SPLIT,
        check=checks.between(0, 1, closed_low=False, closed_high=False), metavar="F")
    test_frac: float | None = setting(
        None, help="Temporal split: the share of all interactions, the latest, that is the "
        "test window.", commands=RUN_COMMANDS, panel=SPLIT,
        check=checks.between(0, 1, closed_low=False, closed_high=False), metavar="F")
    data_seed: int = setting(
        0, help="Seed of the synthetic generator.", commands=RUN_COMMANDS, panel=SYNTH,
        check=checks.at_least(0), renamed=(Renamed("seed"), Renamed("--seed", ("prep",))))
    users: int | None = setting(
        None, help="Synthetic users.", commands=RUN_COMMANDS, panel=SYNTH,
        check=checks.at_least(1), default_text="max(2000, 2 x --items)")
    items: int = setting(
        1000, help="Synthetic catalogue size (200000 is Beauty-scale).", commands=RUN_COMMANDS,
        panel=SYNTH, check=checks.at_least(2))
    mean_len: float = setting(
        20.0, help="Mean synthetic sequence length.", commands=RUN_COMMANDS, panel=SYNTH,
        check=checks.at_least(SYNTHETIC_MIN_MEAN_LEN))
    user_col: str = setting(
        "user", help="User column of a generic file.", commands=RUN_COMMANDS, panel=GENERIC)
    item_col: str = setting(
        "item", help="Item column of a generic file.", commands=RUN_COMMANDS, panel=GENERIC)
    time_col: str | None = setting(
        None, help="Time column of a generic file (numbers or dates).", commands=RUN_COMMANDS,
        panel=GENERIC, default_text="file order")

    @property
    def cache_root(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else default_cache_dir()

    def problems(self, config: RunConfig | None = None) -> Iterator[SettingError]:
        if self.source and self.download:
            yield SettingError("data.download", "and --source exclude each other: give one")
        yield from self._split_problems()

    def _split_problems(self) -> Iterator[SettingError]:
        times = {"data.valid_time": self.valid_time, "data.test_time": self.test_time}
        fracs = {"data.valid_frac": self.valid_frac, "data.test_frac": self.test_frac}
        given = [path for path, value in {**times, **fracs}.items() if value is not None]
        if self.split != "temporal":
            for path in given:
                yield SettingError(path, "applies to --split temporal only")
            return
        if any(v is not None for v in times.values()) and any(
                v is not None for v in fracs.values()):
            yield SettingError("data.valid_frac", "and --valid-time/--test-time exclude each "
                               "other: give the cut-offs as times or as fractions")
            return
        for group in (times, fracs):
            missing = [path for path, value in group.items() if value is None]
            if len(missing) == 1:
                other = next(path for path in group if path != missing[0]).partition(".")[2]
                yield SettingError(missing[0], f"is needed with {flag_for(other)}")
                return
        if self.valid_time is not None and self.test_time is not None:
            valid, test = (checks.parse_time(t) for t in (self.valid_time, self.test_time))
            if test < valid:
                yield SettingError("data.test_time", f"({self.test_time}) is before "
                                   f"--valid-time ({self.valid_time}); it must be at or after")
        if self.valid_frac is not None and self.test_frac is not None and (
                self.valid_frac + self.test_frac >= 1):
            yield SettingError("data.valid_frac", f"+ --test-frac is "
                               f"{self.valid_frac + self.test_frac:g}; they must sum to less "
                               f"than 1 (training needs the rest)")

    def cutoffs(self) -> dict[str, float]:
        """The temporal split as the cache key records it: times, or fractions."""
        if self.valid_time is not None and self.test_time is not None:
            return {"valid_time": checks.parse_time(self.valid_time),
                    "test_time": checks.parse_time(self.test_time)}
        return {"valid_frac": DEFAULT_FRACTION if self.valid_frac is None else self.valid_frac,
                "test_frac": DEFAULT_FRACTION if self.test_frac is None else self.test_frac}

    def validate(self) -> None:
        """Raise the first problem of the data settings (for `prepare` called on its own)."""
        for problem in (*table_problems("data", self), *self.problems()):
            raise problem


@dataclass
class ModelConfig:
    """The encoder's shape (SASRec defaults of the CCE experiment: length 50, embedding 64)."""

    max_len: int = setting(50, help="Longest history the model reads.", commands=TRAINING,
                           panel=MODEL, check=checks.at_least(2))
    dim: int = setting(64, help="Embedding size d.", commands=TRAINING, panel=MODEL,
                       check=checks.at_least(1))
    layers: int = setting(2, help="Transformer blocks.", commands=TRAINING, panel=MODEL,
                          check=checks.at_least(1))
    heads: int = setting(2, help="Attention heads (must divide --dim).", commands=TRAINING,
                         panel=MODEL, check=checks.at_least(1))
    dropout: float = setting(0.2, help="Dropout rate.", commands=TRAINING, panel=MODEL,
                             check=checks.between(0, 1, closed_low=True, closed_high=False))

    def problems(self, config: RunConfig) -> Iterator[SettingError]:
        if self.dim % self.heads:
            yield SettingError("model.dim", f"({self.dim}) must be divisible by --heads "
                                            f"({self.heads})")


@dataclass
class TrainConfig:
    """How to train: loss, optimisation, schedule, device and where runs are recorded."""

    loss: str = setting(
        "ce", help="Next-item loss; a comma list runs each.", commands=(BENCH,), panel=TRAIN,
        short="-l", choices=LOSSES, sweep=True)
    seed: int = setting(
        0, help="Training seed; a comma list runs each (1,2,3).", commands=TRAINING,
        panel=TRAIN, sweep=True, check=checks.at_least(0))
    epochs: int = setting(20, help="Most epochs to train.", commands=NEXT_ITEM, panel=TRAIN,
                          check=checks.at_least(1))
    patience: int = setting(
        5, help="Stop after this many epochs without a better validation score.",
        commands=NEXT_ITEM, panel=TRAIN, check=checks.at_least(1))
    batch_size: int = setting(256, help="Sequences per batch.", commands=NEXT_ITEM, panel=TRAIN,
                              check=checks.at_least(1))
    lr: float = setting(1e-3, help="Adam learning rate.", commands=NEXT_ITEM, panel=TRAIN,
                        check=checks.above(0))
    weight_decay: float = setting(0.0, help="Adam weight decay.", commands=TRAINING,
                                  panel=TRAIN, check=checks.at_least(0))
    last_only: bool = setting(
        False, help="Train on the last position of each sequence only, not every position.",
        commands=NEXT_ITEM, panel=TRAIN, off_flag="--all-positions")
    negatives: int = setting(256, help="Shared negatives per batch of the sampled loss.",
                             commands=NEXT_ITEM, panel=TRAIN, check=checks.at_least(1))
    logq: bool = setting(False, help="logQ correction of the sampled loss.",
                         commands=NEXT_ITEM, panel=TRAIN)
    filter_eps: str = setting(
        "high", help="Gradient filter of the CUDA cce kernel: high (the library's default), "
        "auto, none (exact), or a number; the exact CPU path filters nothing.",
        commands=NEXT_ITEM, panel=TRAIN, check=checks.parses(checks.parse_filter_eps))
    block_size: int | None = setting(
        None, help="Items per block of the exact CPU cce.", commands=NEXT_ITEM, panel=TRAIN,
        check=checks.at_least(1), metavar="N", default_text="1024")
    device: str = setting(
        "auto", help="auto (the GPU if there is one), cpu, cuda, cuda:1, mps, ...",
        commands=TRAINING, panel=TRAIN, check=checks.parses(checks.parse_device))
    bf16: bool = setting(True, help="bf16 autocast on CUDA (a CPU trains in float32).",
                         commands=TRAINING, panel=TRAIN)
    threads: int | None = setting(
        None, help="CPU threads for torch. Set it when several runs share a machine: each "
        "run otherwise takes every core, and two side by side run many times slower.",
        commands=TRAINING, panel=TRAIN, check=checks.at_least(1), metavar="N",
        default_text="all cores", on_resume=True)
    nproc: int = setting(
        1, help="Train with N processes (DistributedDataParallel under torchrun: gloo on "
        "CPUs, nccl on GPUs).", commands=TRAINING, panel=TRAIN, check=checks.at_least(1))
    max_batches: int | None = setting(
        None, help="Stop each epoch after N batches (for quick measurements).",
        commands=TRAINING, panel=TRAIN, check=checks.at_least(1), metavar="N",
        default_text="all")
    time_limit: float | None = setting(
        None, help="Stop after the epoch that crosses this many minutes (the best epoch is "
        "still tested and recorded). With --resume: a new limit over the whole run.",
        commands=TRAINING, panel=TRAIN, check=checks.above(0), metavar="MINUTES",
        default_text="none", renamed=(Renamed("time_limit_min"),), on_resume=True)
    runs_dir: str = setting("runs", help="Where runs are recorded.", commands=TRAINING,
                            panel=TRAIN, metavar="DIR")


@dataclass
class EvalConfig:
    """How to evaluate: protocols (named next to every number), cut-offs, model selection."""

    protocol: list[str] = setting(
        ["full"], help="Protocols, comma-separated; the first selects the best epoch. "
        + "; ".join(f"{form}: {what}" for form, what in PROTOCOLS.items())
        + "; N an integer >= 1.", commands=NEXT_ITEM, panel=EVAL,
        check=checks.protocol_names, renamed=(Renamed("protocols"),))
    k: list[int] = setting(
        [5, 10, 20], help="Cut-offs K of the metrics, comma-separated.", commands=NEXT_ITEM,
        panel=EVAL, check=_cutoffs, renamed=(Renamed("ks"),))
    exclude_seen: bool = setting(
        True, help="Exclude the items of the history from full ranking (never the target).",
        commands=NEXT_ITEM, panel=EVAL)
    monitor: str = setting(
        "NDCG@10", help="Validation metric that picks the best epoch and stops early: HR@k or "
        "NDCG@k, k in --k.", commands=NEXT_ITEM, panel=EVAL,
        check=checks.parses(checks.parse_monitor))
    eval_batch_size: int = setting(
        512, help="Users per evaluation batch.", commands=NEXT_ITEM, panel=EVAL,
        check=checks.at_least(1), renamed=(Renamed("batch_size"),))
    sampled_seed: int = setting(
        0, help="Seed of the negatives of sampled protocols (fixed per user).",
        commands=NEXT_ITEM, panel=EVAL, check=checks.at_least(0))
    negatives_file: str | None = setting(
        None, help="The negatives of --protocol sampled-file: one line per user, 'user neg1 "
        "... negN' in the dataset's original ids (S3-Rec's <data>_sample.txt).",
        commands=NEXT_ITEM, panel=EVAL, metavar="FILE", default_text="none")

    def problems(self, config: RunConfig) -> Iterator[SettingError]:
        _, k = checks.parse_monitor(self.monitor)
        if k not in self.k:
            yield SettingError("eval.monitor", f"must be HR@k or NDCG@k with k in --k "
                                               f"{self.k}, got {self.monitor!r}")
        uses_file = "sampled-file" in self.protocol
        if uses_file and self.negatives_file is None:
            yield SettingError("eval.protocol", "sampled-file needs --negatives-file FILE")
        if not uses_file and self.negatives_file is not None:
            yield SettingError("eval.negatives_file", "is read only by --protocol "
                                                      "sampled-file; add it or drop the file")


@dataclass
class PretrainConfig:
    """S3Rec pretraining (docs/s3rec.md); a task weight of 0 switches that task off. Seed,
    device, threads, time limit and runs directory come from [train]."""

    epochs: int = setting(100, help="Pretraining epochs.", commands=(PRETRAIN,), panel=S3REC,
                          check=checks.at_least(1))
    batch_size: int = setting(100, help="Pretraining batch size (prefixes).",
                              commands=(PRETRAIN,), panel=S3REC, check=checks.at_least(1))
    lr: float = setting(1e-3, help="Pretraining Adam learning rate.", commands=(PRETRAIN,),
                        panel=S3REC, check=checks.above(0))
    mask_prob: float = setting(
        0.2, help="Probability of masking each position.", commands=(PRETRAIN,), panel=S3REC,
        check=checks.between(0, 1, closed_low=False, closed_high=False))
    mask_last: bool = setting(
        True, help="Always mask the last item of each prefix, as the original does; off: "
        "masked with --mask-prob like the others.", commands=(PRETRAIN,), panel=S3REC)
    aap_weight: float = setting(
        0.2, help="Weight of AAP (item -> its attributes; 0 switches it off).",
        commands=(PRETRAIN,), panel=S3REC, check=checks.at_least(0),
        renamed=(Renamed("aap"),))
    mip_weight: float = setting(
        1.0, help="Weight of MIP (masked item prediction).", commands=(PRETRAIN,),
        panel=S3REC, check=checks.at_least(0), renamed=(Renamed("mip"),))
    map_weight: float = setting(
        1.0, help="Weight of MAP (masked item -> its attributes).", commands=(PRETRAIN,),
        panel=S3REC, check=checks.at_least(0), renamed=(Renamed("map"),))
    sp_weight: float = setting(
        0.5, help="Weight of SP (segment prediction).", commands=(PRETRAIN,), panel=S3REC,
        check=checks.at_least(0), renamed=(Renamed("sp"),))
    rank: int | None = setting(
        None, help="Low-rank heads W = U V^T of rank r instead of d x d; a comma list runs a "
        "sweep, 'full' is the full-rank model (full,4,16).", commands=(PRETRAIN,),
        panel=S3REC, sweep=True, none_word="full", metavar="R", default_text="full")
    lowrank_heads: str = setting(
        "attributes", help="Which heads --rank makes low-rank: attributes (AAP and MAP), all, "
        "or a comma list of aap, mip, map, sp.", commands=(PRETRAIN,), panel=S3REC,
        check=checks.parses(checks.parse_lowrank_heads))
    checkpoint_every: int = setting(
        10, help="Save a checkpoint every N epochs (and always at the end).",
        commands=(PRETRAIN,), panel=S3REC, check=checks.at_least(1))

    @property
    def weights(self) -> dict[str, float]:
        return {"aap": self.aap_weight, "mip": self.mip_weight, "map": self.map_weight,
                "sp": self.sp_weight}

    @property
    def heads(self) -> tuple[str, ...]:
        """The low-rank heads as task names (canonical order)."""
        return checks.parse_lowrank_heads(self.lowrank_heads)

    def problems(self, config: RunConfig) -> Iterator[SettingError]:
        if not any(weight > 0 for weight in self.weights.values()):
            yield SettingError("pretrain.aap_weight", ", --mip-weight, --map-weight and "
                               "--sp-weight are all 0: every pretraining task has weight 0; "
                               "switch at least one on")
        dim = config.model.dim
        if self.rank is not None and not 1 <= self.rank <= dim:
            yield SettingError("pretrain.rank", f"must be in [1, --dim = {dim}], got "
                                                f"{self.rank}")


@dataclass
class FinetuneConfig:
    """S3Rec fine-tuning: where from, and the loss (the paper's `bce` unless told otherwise);
    everything else comes from [train], [model] and [eval]."""

    loss: str = setting(
        "bce", help="Next-item loss (bce is the paper's); a comma list runs each.",
        commands=(FINETUNE,), panel=TRAIN, short="-l", choices=LOSSES, sweep=True)
    init_from: str | None = setting(
        None, help="A pretraining run directory (its last checkpoint) or a .pt checkpoint. "
        "Without it, this is plain SASRec.", commands=(FINETUNE,), panel=S3REC,
        aliases=("--from",), metavar="RUN", default_text="none (no pretraining)")


@dataclass
class RunConfig:
    """Everything a run command needs; one field per TOML table."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def problems(self) -> Iterator[SettingError]:
        """Every value that breaks a rule: each setting's own, then those between settings."""
        for table in dataclasses.fields(self):
            yield from table_problems(table.name, getattr(self, table.name))
        for table in dataclasses.fields(self):
            section = getattr(self, table.name)
            if hasattr(section, "problems"):
                yield from section.problems(self)

    def validate(self) -> None:
        """Raise the first problem (a `SettingError` naming the setting by its flag)."""
        for problem in self.problems():
            raise problem

    def to_dict(self) -> dict[str, Any]:
        """The tables as config.json records them (and TOML spells them)."""
        return dataclasses.asdict(self)

    def get(self, path: str) -> Any:
        table, _, key = path.partition(".")
        return getattr(getattr(self, table), key)

    def replace(self, **values: Any) -> RunConfig:
        """A copy with some settings changed, by path: `replace(**{"train.seed": 2})`."""
        tables: dict[str, dict[str, Any]] = {}
        for path, value in values.items():
            table, _, key = path.partition(".")
            tables.setdefault(table, {})[key] = value
        return dataclasses.replace(self, **{
            table: dataclasses.replace(getattr(self, table), **changes)
            for table, changes in tables.items()})


def table_problems(name: str, table: Any) -> Iterator[SettingError]:
    """The values of one table that break their setting's own rule."""
    for declared in declared_settings(RunConfig):
        if declared.table == name:
            problem = value_problem(declared, getattr(table, declared.key))
            if problem is not None:
                yield SettingError(declared.path, problem)


def value_problem(declared: Declared, value: Any) -> str | None:
    """What is wrong with one value of a setting (each value of a sweep is checked alone)."""
    setting_ = declared.setting
    if value is None:
        return None
    if setting_.choices is not None:
        values = value if isinstance(value, list) else [value]
        if declared.is_list and not values:
            return f"needs at least one of: {', '.join(setting_.choices)}"
        for item in values:
            if item not in setting_.choices:
                return f"{item!r} is not one of: {', '.join(setting_.choices)}"
    if setting_.check is not None:
        return setting_.check(value)
    return None
