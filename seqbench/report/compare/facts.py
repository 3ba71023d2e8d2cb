"""What one run directory says, whichever of its files says it, and which runs to compare.

Everything downstream (rows, the report, charts) reads runs through RunFacts only.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench.report.compare.options import CompareOptions
from seqbench.runs.read import RunView, list_runs, read_runs
from seqbench.runs.schema import ModelKind, pretrained_from

log = logging.getLogger(__name__)

PRETRAIN_MODEL = ModelKind.S3REC_PRETRAIN.value
PRETRAIN_LOSS = "pretrain"  # what --loss matches for pretraining runs (they ignore train.loss)


@dataclass
class RunFacts:
    """The fields of one run that compare shows, whichever file they had to come from.

    A finished run has them all in summary.json; a failed or running one only has config.json
    and its epoch events, so memory, time and epochs are recomputed from those.
    """

    view: RunView
    dataset: str
    split: str  # "loo" or "temporal": runs of two splits are never grouped or compared
    model: str
    loss: str  # train.loss ("ce", "cce", ...), or PRETRAIN_LOSS
    backend: str  # e.g. "cce[cuda-kernel]"
    seed: int | None
    variant: str | None  # S3Rec: "full", "r16", "r16-aap", ... (pretraining and its fine-tunes)
    rank: int | None  # S3Rec: the low-rank heads' rank; None for full-rank or plain runs
    device: str | None
    status: str
    peak_memory_bytes: float | None
    memory_kind: str | None
    mean_epoch_seconds: float | None
    epochs: int | None
    parameters: int | None
    test: dict[str, dict[str, float]]

    @property
    def scope(self) -> tuple[str, str]:
        """What a baseline must share with a run: its dataset and its split."""
        return (self.dataset, self.split)

    @property
    def is_pretrain(self) -> bool:
        return self.model == PRETRAIN_MODEL

    @property
    def is_finetuned_from_pretrain(self) -> bool:
        return pretrained_from(self.view.config) is not None

    @property
    def label(self) -> str:
        """Short legend label, e.g. `beauty ce s0` or `s3rec bce r16 s0`."""
        parts = [self.dataset, self.loss]
        if self.variant:
            parts.append(self.variant)
        parts.append(f"s{self.seed}" if self.seed is not None else "s?")
        return " ".join(parts)

    def value(self, name: str) -> str | int | None:
        """A field by its --group-by name."""
        return {"dataset": self.dataset, "split": self.split, "model": self.model,
                "loss": self.loss,
                "backend": self.backend, "seed": self.seed, "variant": self.variant,
                "status": self.status, "device": self.device,
                "memory_kind": self.memory_kind}[name]


def run_facts(view: RunView) -> RunFacts:
    """Everything compare needs from one run directory: summary first, then config and events
    (runs/schema.py reads each file)."""
    summary, resolved = view.summary_view, view.resolved
    model = _first(summary.model, resolved.model, "?")
    is_pretrain = model == PRETRAIN_MODEL
    loss = PRETRAIN_LOSS if is_pretrain else _first(summary.loss, resolved.loss, "?")
    backend = PRETRAIN_LOSS if is_pretrain else _first(summary.loss_backend,
                                                       resolved.loss_backend, loss)
    epochs = view.epochs()
    epoch_seconds = [e.seconds for e in epochs if e.seconds is not None]
    memory = [e.peak_memory_bytes for e in epochs if e.peak_memory_bytes is not None]
    memory_kinds = [e.memory_kind for e in epochs if e.memory_kind is not None]
    epochs_run = _first(summary.epochs_run, len(view.events_of("epoch")) or None)
    return RunFacts(
        view=view,
        dataset=_first(summary.dataset, resolved.dataset, "?"),
        split=_first(summary.split, resolved.split),
        model=model,
        loss=loss,
        backend=backend,
        seed=_first(summary.seed, resolved.seed),
        variant=resolved.variant,
        rank=resolved.rank,
        device=_first(summary.device, resolved.device),
        status=view.status,
        peak_memory_bytes=_first(summary.peak_memory_bytes, max(memory) if memory else None),
        memory_kind=_first(summary.memory_kind, memory_kinds[-1] if memory_kinds else None),
        mean_epoch_seconds=_first(summary.mean_epoch_seconds,
                                  statistics.fmean(epoch_seconds) if epoch_seconds else None),
        epochs=epochs_run,
        parameters=_first(summary.parameters, resolved.parameters),
        test=summary.test,
    )


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


# ---------------------------------------------------------------------------------------------
# choosing the runs


def select_runs(options: CompareOptions) -> tuple[list[RunFacts], str]:
    """The runs to compare after filters and --last, and what they were read from (for titles)."""
    if options.runs:
        views = read_runs(options.runs)
        source = f"{len(views)} given runs"
    else:
        views = list_runs(options.runs_dir)
        _report_non_runs(options.runs_dir, views)
        source = str(options.runs_dir)
    facts = [run_facts(view) for view in views]
    if options.datasets:
        facts = [f for f in facts if f.dataset in options.datasets]
    if options.losses:
        facts = [f for f in facts if f.loss in options.losses or f.backend in options.losses]
    if options.last is not None:
        newest = sorted(facts, key=lambda f: (f.view.started, f.view.run_id))[-options.last:]
        keep = {id(f) for f in newest}
        facts = [f for f in facts if id(f) in keep]
    return facts, source


def _report_non_runs(runs_dir: Path, runs: list[RunView]) -> None:
    """Warn once about each directory in `runs_dir` that is not a run (list_runs skips them)."""
    run_paths = {view.path for view in runs}
    try:
        entries = sorted(Path(runs_dir).iterdir())
    except OSError:
        return  # list_runs has already said what is wrong with runs_dir
    for entry in entries:
        if entry.name.startswith(".") or entry in run_paths:
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir:
            log.warning("%s: not a run directory (no readable config.json); skipped", entry)
