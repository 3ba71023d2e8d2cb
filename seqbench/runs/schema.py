"""The run record's schema: model kinds, the epoch event, the summary, and what config.json
resolved. Writers (the trainer, the recipes) and readers (`compare`, `dash`, `--resume`) go
through these types, so a field is named in one place (docs/runs.md describes the files).

Reading is forgiving: records come from other machines, earlier releases and hand edits, so a
field of the wrong type reads as missing (None) rather than failing, and unknown fields are
ignored. Torch-free, so `compare` and `dash` stay light.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from seqbench.vocabulary import ATTRIBUTE_TASKS, variant_name

Metrics = dict[str, dict[str, float]]  # {protocol: {metric: value}}

# event names of events.jsonl, in the order a run writes them
START, EPOCH, CHECKPOINT, RESUMED, END, FAILED, INTERRUPTED = (
    "start", "epoch", "checkpoint", "resumed", "end", "failed", "interrupted")
#: the event that closes a run -> the run's status
TERMINAL_EVENTS = {END: "finished", FAILED: "failed", INTERRUPTED: "interrupted"}
STATUSES = ("running", "finished", "failed", "interrupted", "unknown")


class ModelKind(str, Enum):
    """What a run trained; it decides the command that resumes it."""

    SASREC = "sasrec"
    S3REC = "s3rec"  # SASRec fine-tuned from an S3Rec pretraining
    S3REC_PRETRAIN = "s3rec-pretrain"

    @property
    def command(self) -> str:
        return {ModelKind.SASREC: "bench", ModelKind.S3REC: "finetune",
                ModelKind.S3REC_PRETRAIN: "pretrain"}[self]

    @property
    def is_pretraining(self) -> bool:
        return self is ModelKind.S3REC_PRETRAIN

    @classmethod
    def of(cls, value: Any) -> ModelKind | None:
        """The kind a record names; None for anything else."""
        try:
            return cls(value)
        except ValueError:
            return None


def resume_command(kind: ModelKind | None, run_dir: Path | str) -> str:
    """The command line that continues a run (bench for a run of unknown kind)."""
    command = kind.command if kind is not None else "bench"
    return f"seqbench {command} --resume {run_dir}"


@dataclass
class EpochRecord:
    """One finished epoch: what the trainer measured and, with validation, the metrics.

    It is the trainer's epoch report, an `epoch` event of events.jsonl (`to_event`), and part
    of last.pt's trainer state (`asdict`), which `--resume` reads back with `from_state`. The
    trainer fills every field; a field an event lacks reads back as None.
    """

    epoch: int
    losses: dict[str, float]
    seconds: float | None
    sequences_per_second: float | None
    peak_memory_bytes: int | None
    memory_kind: str | None
    valid: Metrics | None = None
    valid_seconds: float | None = 0.0
    improved: bool = False

    def to_event(self, *, device: str | None = None, restored: bool = False) -> dict[str, Any]:
        """The fields of the `epoch` event (`restored`: rewritten by a resume, after a kill
        cut the original event off)."""
        event = {"epoch": self.epoch, "train_loss": self.losses.get("loss"),
                 "losses": self.losses, "valid": self.valid, "epoch_seconds": self.seconds,
                 "valid_seconds": self.valid_seconds,
                 "sequences_per_second": self.sequences_per_second,
                 "peak_memory_bytes": self.peak_memory_bytes, "memory_kind": self.memory_kind}
        if device is not None:
            event["device"] = device
        event["improved"] = self.improved
        if restored:
            event["restored"] = True
        return event

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> EpochRecord:
        """An epoch saved in last.pt (written by `asdict`; trusted: seqbench wrote it)."""
        return cls(**{f.name: state[f.name] for f in fields(cls) if f.name in state})

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> EpochRecord | None:
        """An `epoch` event as read back; None without a usable epoch number."""
        epoch = number(event.get("epoch"))
        if epoch is None:
            return None
        losses = _number_map(event.get("losses"))
        train_loss = number(event.get("train_loss"))
        if train_loss is not None:
            losses.setdefault("loss", train_loss)
        memory = number(event.get("peak_memory_bytes"))
        return cls(epoch=int(epoch), losses=losses,
                   seconds=number(event.get("epoch_seconds")),
                   sequences_per_second=number(event.get("sequences_per_second")),
                   peak_memory_bytes=None if memory is None else int(memory),
                   memory_kind=_text(event.get("memory_kind")),
                   valid=metrics(event.get("valid")) or None,
                   valid_seconds=number(event.get("valid_seconds")),
                   improved=event.get("improved") is True)

    @property
    def train_loss(self) -> float | None:
        return self.losses.get("loss")


@dataclass
class RunSummary:
    """summary.json of a finished run. Common fields first; `test`, `valid`, `baseline`,
    `loss`... belong to next-item runs, `variant`, `tasks`, `first_losses`... to pretraining;
    the ones a kind does not have are None and left out of the file."""

    dataset: str
    model: str  # a ModelKind value
    seed: int
    device: str
    parameters: int
    epochs_run: int
    stop_reason: str  # "epochs", "patience" or "time-limit"
    mean_epoch_seconds: float
    peak_memory_bytes: int
    memory_kind: str
    sequences_per_second: float
    run_id: str | None = None
    path: str | None = None
    split: str | None = None  # "loo" or "temporal": named next to every metric
    # next-item training (bench, finetune)
    loss: str | None = None
    loss_backend: str | None = None
    best_epoch: int | None = None
    stopped_early: bool | None = None
    valid: Metrics | None = None
    test: Metrics | None = None
    baseline: dict[str, Any] | None = None
    # S3Rec pretraining
    variant: str | None = None
    tasks: list[str] | None = None
    first_losses: dict[str, float] | None = None
    final_losses: dict[str, float] | None = None
    checkpoint: str | None = None
    parameter_account: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The summary as written (fields a kind lacks are left out)."""
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass
class SummaryView:
    """What a reader may rely on from a summary.json (any release, maybe hand-edited)."""

    status: str | None = None
    dataset: str | None = None
    split: str | None = None
    model: str | None = None
    loss: str | None = None
    loss_backend: str | None = None
    seed: int | None = None
    device: str | None = None
    parameters: int | None = None
    epochs_run: int | None = None
    stop_reason: str | None = None
    mean_epoch_seconds: float | None = None
    peak_memory_bytes: float | None = None
    memory_kind: str | None = None
    test: Metrics = field(default_factory=dict)
    error: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, summary: Mapping[str, Any] | None) -> SummaryView:
        summary = summary or {}
        return cls(status=_text(summary.get("status")), dataset=_text(summary.get("dataset")),
                   split=_text(summary.get("split")),
                   model=_text(summary.get("model")), loss=_text(summary.get("loss")),
                   loss_backend=_text(summary.get("loss_backend")),
                   seed=integer(summary.get("seed")), device=_text(summary.get("device")),
                   parameters=integer(summary.get("parameters")),
                   epochs_run=integer(summary.get("epochs_run")),
                   stop_reason=_text(summary.get("stop_reason")),
                   mean_epoch_seconds=number(summary.get("mean_epoch_seconds")),
                   peak_memory_bytes=number(summary.get("peak_memory_bytes")),
                   memory_kind=_text(summary.get("memory_kind")),
                   test=metrics(summary.get("test")),
                   error=_mapping(summary.get("error")))


@dataclass
class ResolvedView:
    """config.json's `resolved` table (what a run settled on when it started) with the few
    settings readers need, from any release."""

    model: str | None = None
    kind: ModelKind | None = None
    loss_backend: str | None = None
    device: str | None = None
    parameters: int | None = None
    processes: int = 1
    dataset: str | None = None
    split: str = "loo"  # 0.1.0 runs are all leave-one-out
    loss: str | None = None
    seed: int | None = None
    #: S3Rec: the rank of the pretraining's low-rank heads (None: full rank) and its variant
    #: name, for pretraining runs and for the fine-tunings started from one (else None)
    rank: int | None = None
    variant: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ResolvedView:
        resolved = _mapping(config.get("resolved")) or {}
        data = _mapping(config.get("data")) or {}
        train = _mapping(config.get("train")) or {}
        model = _text(resolved.get("model"))
        kind = ModelKind.of(model)
        processes = integer(resolved.get("processes"))
        view = cls(model=model, kind=kind, loss_backend=_text(resolved.get("loss_backend")),
                   device=_text(resolved.get("device")),
                   parameters=integer(resolved.get("parameters")),
                   processes=processes if processes and processes > 1 else 1,
                   dataset=_text(data.get("dataset")), split=_text(data.get("split")) or "loo",
                   loss=_text(train.get("loss")),
                   seed=integer(train.get("seed")))
        view.rank, view.variant = _variant(config, resolved, kind)
        return view


def pretrained_from(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """Where a fine-tuning started: {checkpoint, rank, variant, epoch} (`resolved.pretrained`;
    0.1.0 kept these in the [finetune] table as init_from and pretrain_*); None for a run
    that did not start from a pretraining."""
    resolved = _mapping(config.get("resolved")) or {}
    pretrained = _mapping(resolved.get("pretrained"))
    if pretrained is not None:
        return pretrained if pretrained.get("checkpoint") else None
    finetune = _mapping(config.get("finetune")) or {}
    if "pretrain_rank" not in finetune or not finetune.get("init_from"):
        return None
    return {"checkpoint": finetune.get("init_from"), "rank": finetune.get("pretrain_rank"),
            "variant": finetune.get("pretrain_variant"), "epoch": finetune.get("pretrain_epoch")}


def _variant(config: Mapping[str, Any], resolved: Mapping[str, Any], kind: ModelKind | None
             ) -> tuple[int | None, str | None]:
    """S3Rec's pretraining variant ("full", "r16", "r16-aap", ...) and its rank, from the
    config (so a run still being written has them too)."""
    if kind is ModelKind.S3REC_PRETRAIN:
        rank, heads, variant = integer(resolved.get("rank")), resolved.get("lowrank_heads"), None
    else:
        pretrained = pretrained_from(config)
        if pretrained is None:
            return None, None
        rank, heads, variant = integer(pretrained.get("rank")), None, pretrained.get("variant")
    if not isinstance(variant, str):
        heads = heads if isinstance(heads, list) and heads else ATTRIBUTE_TASKS
        variant = variant_name(rank, [str(h) for h in heads])
    return rank, variant


# ---------------------------------------------------------------------------------------------
# forgiving field readers


def number(value: Any) -> float | None:
    """A finite number, or None: files written by hand or by an old version may hold anything."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def metrics(value: Any) -> Metrics:
    """{protocol: {metric: value}} keeping only finite numbers (anything else reads as missing)."""
    if not isinstance(value, Mapping):
        return {}
    return {str(protocol): _number_map(values) for protocol, values in value.items()
            if isinstance(values, Mapping)}


def _number_map(value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        return {}
    return {str(name): n for name, v in value.items() if (n := number(v)) is not None}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _mapping(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None
