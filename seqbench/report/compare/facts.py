"""What one run directory says, whichever of its files says it, and which runs to compare.

Everything downstream (rows, the report, charts) reads runs through RunFacts only.
"""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench.engine.s3rec_tasks import ATTRIBUTE_TASKS, variant_name
from seqbench.errors import SeqbenchError
from seqbench.report.compare.options import CompareOptions
from seqbench.runs.read import RunView, list_runs, read_run

log = logging.getLogger(__name__)

PRETRAIN_MODEL = "s3rec-pretrain"
PRETRAIN_LOSS = "pretrain"  # what --loss matches for pretraining runs (they ignore train.loss)


@dataclass
class RunFacts:
    """The fields of one run that compare shows, whichever file they had to come from.

    A finished run has them all in summary.json; a failed or running one only has config.json
    and its epoch events, so memory, time and epochs are recomputed from those.
    """

    view: RunView
    dataset: str
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
    def is_pretrain(self) -> bool:
        return self.model == PRETRAIN_MODEL

    @property
    def is_finetuned_from_pretrain(self) -> bool:
        finetune = self.view.config.get("finetune")
        return (isinstance(finetune, dict) and "pretrain_rank" in finetune
                and bool(finetune.get("init_from")))

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
        return {"dataset": self.dataset, "model": self.model, "loss": self.loss,
                "backend": self.backend, "seed": self.seed, "variant": self.variant,
                "status": self.status, "device": self.device,
                "memory_kind": self.memory_kind}[name]


def run_facts(view: RunView) -> RunFacts:
    """Everything compare needs from one run directory: summary first, then config and events."""
    summary = view.summary or {}
    config = view.config
    section = _section
    resolved, train, data = section(config, "resolved"), section(config, "train"), section(
        config, "data")
    model = str(_first(summary.get("model"), resolved.get("model"), "?"))
    is_pretrain = model == PRETRAIN_MODEL
    loss = PRETRAIN_LOSS if is_pretrain else str(_first(summary.get("loss"), train.get("loss"),
                                                        "?"))
    backend = PRETRAIN_LOSS if is_pretrain else str(
        _first(summary.get("loss_backend"), resolved.get("loss_backend"), loss))
    variant, rank = _variant(config, is_pretrain)
    epochs = view.events_of("epoch")
    epoch_seconds = [s for s in (_number(e.get("epoch_seconds")) for e in epochs) if s is not None]
    memory = [m for m in (_number(e.get("peak_memory_bytes")) for e in epochs) if m is not None]
    memory_kinds = [e["memory_kind"] for e in epochs if isinstance(e.get("memory_kind"), str)]
    seed = _first(summary.get("seed"), train.get("seed"))
    parameters = _first(_number(summary.get("parameters")), _number(resolved.get("parameters")))
    epochs_run = _first(_number(summary.get("epochs_run")), float(len(epochs)) if epochs else None)
    return RunFacts(
        view=view,
        dataset=str(_first(summary.get("dataset"), data.get("dataset"), "?")),
        model=model,
        loss=loss,
        backend=backend,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        variant=variant,
        rank=rank,
        device=_first(summary.get("device"), resolved.get("device")),
        status=view.status,
        peak_memory_bytes=_first(_number(summary.get("peak_memory_bytes")),
                                 max(memory) if memory else None),
        memory_kind=_first(summary.get("memory_kind"), memory_kinds[-1] if memory_kinds else None),
        mean_epoch_seconds=_first(_number(summary.get("mean_epoch_seconds")),
                                  statistics.fmean(epoch_seconds) if epoch_seconds else None),
        epochs=int(epochs_run) if epochs_run is not None else None,
        parameters=int(parameters) if parameters is not None else None,
        test=_test_metrics(summary.get("test")),
    )


def _variant(config: dict[str, Any], is_pretrain: bool) -> tuple[str | None, int | None]:
    """S3Rec's pretraining variant ("full", "r16", "r16-aap", ...) and rank, for pretrain and
    fine-tune runs; from the config, so that a run still being written has it too."""
    if is_pretrain:
        resolved = _section(config, "resolved")
        rank, heads = resolved.get("rank"), resolved.get("lowrank_heads")
        variant = None
    else:
        finetune = _section(config, "finetune")
        if "pretrain_rank" not in finetune or not finetune.get("init_from"):
            return None, None
        rank, heads = finetune.get("pretrain_rank"), None
        variant = finetune.get("pretrain_variant")
    rank = rank if isinstance(rank, int) and not isinstance(rank, bool) else None
    if not isinstance(variant, str):  # pretraining; or a fine-tune without pretrain_variant
        heads = heads if isinstance(heads, list) and heads else ATTRIBUTE_TASKS
        variant = variant_name(rank, [str(h) for h in heads])
    return variant, rank


def _test_metrics(test: Any) -> dict[str, dict[str, float]]:
    """{protocol: {metric: value}} keeping only finite numbers (anything else reads as missing)."""
    if not isinstance(test, dict):
        return {}
    result = {}
    for protocol, metrics in test.items():
        if isinstance(metrics, dict):
            result[str(protocol)] = {str(name): number for name, value in metrics.items()
                                     if (number := _number(value)) is not None}
    return result


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    """A finite number, or None: files written by hand or by an old version may hold anything."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


# ---------------------------------------------------------------------------------------------
# choosing the runs


def select_runs(options: CompareOptions) -> tuple[list[RunFacts], str]:
    """The runs to compare after filters and --last, and what they were read from (for titles)."""
    if options.runs:
        views = []
        for path in options.runs:
            view = read_run(path) if Path(path).is_dir() else None
            if view is None:
                raise SeqbenchError(f"{path} is not a run directory (no readable config.json)")
            views.append(view)
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
