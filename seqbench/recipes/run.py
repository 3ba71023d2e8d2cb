"""The one recipe every training command runs: seed -> the command's Job -> optimiser, schedule
-> the one trainer -> the run record -> summary.

What differs between bench, pretrain and finetune is the `Job` each builds: its model and
trainer Task, its learning rate and schedule, and its metadata (run name, what config.json
resolved, what the summary adds). Everything else happens here, once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqbench.config import RunConfig, setting_at
from seqbench.engine.distributed import Shard, any_rank
from seqbench.engine.encoder import EncoderShape
from seqbench.engine.telemetry import device_description
from seqbench.engine.trainer import (
    FitResult,
    ProgressSink,
    Schedule,
    Task,
    Trainer,
    seed_everything,
)
from seqbench.recipes.checkpoints import load_resume_state
from seqbench.recipes.context import BenchContext
from seqbench.runs.read import current_writer, read_events_since
from seqbench.runs.record import RunRecorder
from seqbench.runs.schema import EPOCH, RESUMED, EpochRecord, ModelKind, RunSummary

log = logging.getLogger(__name__)


@dataclass
class Job:
    """What a command contributes to the one recipe."""

    kind: ModelKind
    model: nn.Module
    task: Task
    shape: EncoderShape
    parameters: int
    lr: float
    epochs: int
    batch_size: int
    label: str  # for the progress bar, e.g. "cce[cpu-blockwise] seed 0"
    name_parts: list[str]  # of the run id, after its timestamp
    #: beside the common fields of config.json's [resolved] (model, device, parameters, ...)
    resolved: dict[str, Any] = field(default_factory=dict)
    checkpoint_meta: dict[str, Any] = field(default_factory=dict)  # beside kind, shape, key
    patience: int = 10  # early stopping (a task that does not validate has none)
    monitor: tuple[str, str] = ("full", "NDCG@10")
    checkpoint_every: int = 0
    #: the fields the kind adds to the summary (e.g. the test metrics), from the fit and the
    #: run directory (None on ranks that do not record)
    finish: Callable[[FitResult, Path | None], dict[str, Any]] = lambda fit, path: {}


Build = Callable[[RunConfig, BenchContext], Job]


def autocast_dtype(config: RunConfig, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA unless switched off; a CPU trains in float32."""
    return torch.bfloat16 if device.type == "cuda" and config.train.bf16 else None


def encoder_shape(config: RunConfig, num_items: int) -> EncoderShape:
    model = config.model
    return EncoderShape(num_items=num_items, max_len=model.max_len, dim=model.dim,
                        layers=model.layers, heads=model.heads, dropout=model.dropout)


def use_threads(threads: int | None) -> None:
    """torch's CPU threads for this process (None: torch's default, every core)."""
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def run(build: Build, config: RunConfig, context: BenchContext, *,
        progress: ProgressSink | None = None, resume_from: Path | None = None) -> dict[str, Any]:
    """One recorded run of the Job `build` makes; with `resume_from` (a run directory) the run
    recorded there continues from its last.pt. Returns the summary as summary.json holds it."""
    train, dataset, device, shard = config.train, context.dataset, context.device, context.shard
    use_threads(train.threads)
    generator = seed_everything(train.seed)
    job = build(config, context)
    optimizer = torch.optim.Adam(job.model.parameters(), lr=job.lr,
                                 weight_decay=train.weight_decay)
    description = device_description(device)
    record = {
        **config.to_dict(),
        "resolved": {"model": job.kind.value, "device": description,
                     "autocast": str(autocast_dtype(config, device)),
                     "parameters": job.parameters, **job.resolved,
                     "dataset_path": str(dataset.path), "dataset_key": dataset.meta["key"],
                     "dataset_stats": dataset.meta["stats"]},
    }
    resume, recorder = _start_recording(context, Path(train.runs_dir), resume_from, record,
                                        job.name_parts, train.time_limit)
    progress = progress if shard.is_main else None
    with recorder if recorder is not None else contextlib.nullcontext():
        if progress is not None:
            progress.start_run(job.label, job.epochs)
        schedule = Schedule(epochs=job.epochs, batch_size=job.batch_size,
                            patience=job.patience, monitor=job.monitor,
                            max_batches=train.max_batches,
                            checkpoint_every=job.checkpoint_every,
                            time_limit_s=None if train.time_limit is None
                            else train.time_limit * 60,
                            agree=_agreement(shard))
        meta = {"kind": job.kind.value, "shape": dataclasses.asdict(job.shape),
                "dataset_key": dataset.meta["key"], **job.checkpoint_meta}
        fit = Trainer(job.task, optimizer, schedule, device=device, generator=generator,
                      recorder=recorder, progress=progress, checkpoint_meta=meta,
                      shard=shard).fit(resume)
        summary = RunSummary(
            run_id=recorder.run_id if recorder else None,
            path=str(recorder.path) if recorder else None,
            dataset=dataset.name, split=dataset.split, model=job.kind.value, seed=train.seed,
            device=description,
            parameters=job.parameters, epochs_run=len(fit.epochs), stop_reason=fit.stop_reason,
            mean_epoch_seconds=fit.mean_epoch_seconds, peak_memory_bytes=fit.peak_memory_bytes,
            memory_kind=fit.memory_kind, sequences_per_second=fit.sequences_per_second,
        )
        run_path = recorder.path if recorder is not None else None
        summary = dataclasses.replace(summary, **job.finish(fit, run_path))
        if recorder is not None:
            recorder.finish(summary)
    return summary.to_json()


def _start_recording(context: BenchContext, runs_dir: Path, resume_from: Path | None,
                     record: dict[str, Any], name_parts: list[str], time_limit: float | None
                     ) -> tuple[dict[str, Any] | None, RunRecorder | None]:
    """The state to resume from (None for a new run) and the run's recorder on rank 0 (None
    elsewhere): a new run directory, or the one being resumed (with its "resumed" event)."""
    shard = context.shard
    if shard.active:
        record["resolved"]["processes"] = shard.world
    resume = (None if resume_from is None
              else load_resume_state(resume_from, context.dataset, shard))
    if not shard.is_main:
        return resume, None
    if resume_from is None:
        return resume, RunRecorder.create(runs_dir, config=record, name_parts=name_parts)
    recorder = RunRecorder.reopen(resume_from)
    if resume is not None:
        _record_resumed(recorder, resume, time_limit)
    return resume, recorder


def _record_resumed(recorder: RunRecorder, state: dict[str, Any],
                    time_limit: float | None) -> None:
    """A "resumed" event; the epoch event a kill may have cut off after last.pt was saved; and
    a time limit given with `--resume`, written into config.json so the record stays true."""
    renamed = tuple(r.old for r in setting_at("train.time_limit").setting.renamed)
    previous = recorder.amend_config("train", "time_limit", time_limit, old_keys=renamed)
    events, _ = read_events_since(recorder.path, 0)
    recorded = [e.get("epoch") for e in events if e.get("event") == EPOCH]
    last = state["trainer"]["epochs"][-1] if state["trainer"]["epochs"] else None
    if last is not None and last["epoch"] not in recorded:
        recorder.event(EPOCH, **EpochRecord.from_state(last).to_event(restored=True))
    changed = ({"time_limit": time_limit, "previous_time_limit": previous}
               if time_limit != previous else {})
    recorder.event(RESUMED, from_epoch=state["epoch"], **changed, **current_writer())


def _agreement(shard: Shard) -> Callable[[bool], bool] | None:
    """How ranks agree on stopping (None in a single process)."""
    return (lambda flag: any_rank(shard, flag)) if shard.active else None

