"""The one training loop. Every model and loss trains through `Trainer.fit`.

What differs between SASRec, S3Rec pretraining and S3Rec fine-tuning lives in a `Task`: how
batches are made, what one step computes, and how (or whether) the model is validated. The
trainer owns the rest: seeding, the optimiser step, divergence checks, per-epoch telemetry
(loss, epoch seconds, throughput, peak memory), early stopping, checkpoints, run events.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from seqbench.engine.distributed import SINGLE, Shard, gather_to_main
from seqbench.engine.telemetry import PeakMemoryMeter
from seqbench.errors import SeqbenchError
from seqbench.runs.schema import EPOCH, EpochRecord, Metrics

log = logging.getLogger(__name__)

EpochReport = EpochRecord  # what the trainer reports after each epoch (runs/schema.py)


class Task(Protocol):
    """What a training objective provides to the trainer."""

    model: nn.Module

    def num_batches(self, batch_size: int) -> int: ...

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterable[Any]: ...

    def batch_sequences(self, batch: Any) -> int: ...

    def step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Losses of one batch; "loss" is the one that is optimised, others are logged."""
        ...

    def validate(self) -> Metrics | None:
        """Validation metrics for model selection, or None when the task has none."""
        ...


class Recorder(Protocol):
    def event(self, event: str, **fields: Any) -> None: ...

    def save_checkpoint(self, name: str, state: dict[str, Any], *, quiet: bool = False
                        ) -> Any: ...


class ProgressSink(Protocol):
    def start_run(self, label: str, epochs: int) -> None: ...

    def start_epoch(self, epoch: int, batches: int) -> None: ...

    def advance(self) -> None: ...

    def end_epoch(self, report: EpochReport) -> None: ...


class Diverged(SeqbenchError):
    """The loss became NaN or infinite."""


@dataclass
class FitResult:
    best_epoch: int
    best_valid: Metrics | None
    epochs: list[EpochReport] = field(default_factory=list)
    stopped_early: bool = False
    #: why training ended: "epochs" (all run), "patience" (early stopping) or "time-limit"
    stop_reason: str = "epochs"

    @property
    def mean_epoch_seconds(self) -> float:
        return float(np.mean([e.seconds for e in self.epochs])) if self.epochs else 0.0

    @property
    def peak_memory_bytes(self) -> int:
        return max((e.peak_memory_bytes or 0 for e in self.epochs), default=0)

    @property
    def sequences_per_second(self) -> float:
        """Mean over epochs (0 before the first)."""
        rates = [e.sequences_per_second or 0.0 for e in self.epochs]
        return sum(rates) / len(rates) if rates else 0.0

    @property
    def memory_kind(self) -> str:
        return (self.epochs[0].memory_kind or "") if self.epochs else ""


LAST_CHECKPOINT = "last"


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    """Mixed precision for a task's forward (bf16 on CUDA), or nothing when `dtype` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def capture_rng() -> dict[str, Any]:
    """Every RNG a training step may draw from, in types `torch.load(weights_only=True)` reads."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return the generator that orders the training data."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class Schedule:
    epochs: int
    batch_size: int
    patience: int = 10
    monitor: tuple[str, str] = ("full", "NDCG@10")
    max_batches: int | None = None
    time_limit_s: float | None = None  # checked after each epoch: a started epoch finishes
    #: under several processes: True on every rank when any rank says True (clocks differ,
    #: and all ranks must stop after the same epoch)
    agree: Callable[[bool], bool] | None = None
    checkpoint_every: int = 0  # tasks without validation: also checkpoint every N epochs


class _DivergenceWatch:
    """Finds the first step of an epoch whose loss is not finite.

    On a CPU each step is checked as it ends (reading a CPU tensor costs nothing). On a GPU
    reading the loss would make the host wait for the device every step, so the first bad
    step and its loss are kept on the device and reported at the epoch's end, with the same
    message; the steps after it are wasted, the record is the same (docs/architecture.md)."""

    def __init__(self, device: torch.device, *, deferred: bool | None = None) -> None:
        self.deferred = device.type == "cuda" if deferred is None else deferred
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=device)
        self.bad_loss = torch.zeros((), dtype=torch.float32, device=device)

    def check(self, loss: torch.Tensor, epoch: int, step: int) -> None:
        if not self.deferred:
            if not torch.isfinite(loss).item():
                raise _diverged(loss.item(), epoch, step)
            return
        newly = ~torch.isfinite(loss) & (self.first_bad < 0)
        self.first_bad = torch.where(newly, self.first_bad.new_full((), step), self.first_bad)
        self.bad_loss = torch.where(newly, loss.float(), self.bad_loss)

    def raise_if_diverged(self, epoch: int) -> None:
        if self.deferred and int(self.first_bad) >= 0:  # one read, once an epoch
            raise _diverged(self.bad_loss.item(), epoch, int(self.first_bad))


def _diverged(loss: float, epoch: int, step: int) -> Diverged:
    return Diverged(f"training diverged: the loss is {loss} at epoch {epoch}, step {step}; "
                    f"lower the learning rate or check the data")


class Trainer:
    def __init__(self, task: Task, optimizer: torch.optim.Optimizer, schedule: Schedule, *,
                 device: torch.device, generator: torch.Generator,
                 recorder: Recorder | None = None, progress: ProgressSink | None = None,
                 checkpoint_meta: dict[str, Any] | None = None, shard: Shard = SINGLE,
                 deferred_checks: bool | None = None) -> None:
        """`deferred_checks`: find a diverged loss at the epoch's end instead of at its step
        (None: on CUDA only, where a per-step check would synchronise with the host)."""
        self.deferred_checks = deferred_checks
        self.task = task
        self.optimizer = optimizer
        self.schedule = schedule
        self.device = device
        self.generator = generator
        self.recorder = recorder
        self.progress = progress
        self.checkpoint_meta = checkpoint_meta or {}
        self.shard = shard

    def fit(self, resume: dict[str, Any] | None = None) -> FitResult:
        """Train until `epochs` or early stopping; the model ends with its best weights.

        With a recorder, `last.pt` is rewritten (atomically) after every epoch with everything
        needed to continue: weights, optimizer, RNG states, data order and early-stopping
        state. `resume` is such a checkpoint (plus "best_model", the weights of best.pt): the
        run then continues after its epoch and ends exactly as an uninterrupted run would.
        """
        schedule = self.schedule
        result = FitResult(best_epoch=0, best_valid=None)
        best_score = -math.inf
        best_state: dict[str, torch.Tensor] | None = None
        stale = 0
        elapsed_before = 0.0
        first_epoch = 1
        if resume is not None:
            trainer = resume["trainer"]
            self.task.model.load_state_dict(resume["model"])
            self.optimizer.load_state_dict(resume["optimizer"])
            # each rank draws its own dropout masks: it continues from its own RNG states
            restore_rng(resume["rng_ranks"][self.shard.rank] if "rng_ranks" in resume
                        else resume["rng"])
            self.generator.set_state(resume["data_order"])
            result.epochs = [EpochRecord.from_state(report) for report in trainer["epochs"]]
            result.best_epoch, result.best_valid = trainer["best_epoch"], trainer["best_valid"]
            best_score, stale = trainer["best_score"], trainer["stale"]
            elapsed_before = trainer["elapsed"]
            best_state = resume.get("best_model")
            first_epoch = resume["epoch"] + 1
            log.info("resuming after epoch %d", resume["epoch"])
        fit_started = time.perf_counter() - elapsed_before
        for epoch in range(first_epoch, schedule.epochs + 1):
            report = self._train_epoch(epoch)
            tick = time.perf_counter()
            report.valid = self.task.validate()
            report.valid_seconds = time.perf_counter() - tick
            if report.valid is not None:
                protocol, metric = schedule.monitor
                score = report.valid[protocol][metric]
                report.improved = score > best_score
                if report.improved:
                    best_score, stale = score, 0
                    result.best_epoch, result.best_valid = epoch, report.valid
                    best_state = copy.deepcopy(self.task.model.state_dict())
                    self._checkpoint("best", epoch)
                else:
                    stale += 1
            else:  # no model selection: checkpoint every few epochs and at the end
                result.best_epoch = epoch
                if schedule.checkpoint_every and epoch % schedule.checkpoint_every == 0:
                    self._checkpoint(f"epoch-{epoch}", epoch)
            result.epochs.append(report)
            elapsed = time.perf_counter() - fit_started
            self._save_last(epoch, result, best_score=best_score, stale=stale, elapsed=elapsed)
            self._record(report)
            if self.progress is not None:
                self.progress.end_epoch(report)
            if report.valid is not None and stale >= schedule.patience:
                result.stopped_early, result.stop_reason = True, "patience"
                log.info("early stop after epoch %d: no better %s for %d epochs", epoch,
                         "/".join(schedule.monitor), schedule.patience)
                break
            over_time = schedule.time_limit_s is not None and elapsed >= schedule.time_limit_s
            if schedule.agree is not None and schedule.time_limit_s is not None:
                over_time = schedule.agree(over_time)
            if over_time and epoch < schedule.epochs:
                result.stopped_early, result.stop_reason = True, "time-limit"
                log.warning("time limit reached after epoch %d (%.0f s): stopping with the best "
                            "epoch so far (%d)", epoch, elapsed, result.best_epoch)
                break
        last = result.epochs[-1].epoch if result.epochs else 0
        if result.best_valid is None and last and not (
                schedule.checkpoint_every and last % schedule.checkpoint_every == 0):
            self._checkpoint(f"epoch-{last}", last)  # the end, whatever stopped it
        if best_state is not None:
            self.task.model.load_state_dict(best_state)
        return result

    def _save_last(self, epoch: int, result: FitResult, *, best_score: float, stale: int,
                   elapsed: float) -> None:
        """`last.pt`: the state after `epoch`, for `--resume` (atomic: a kill leaves the
        previous one). Saved before the epoch's event, so an event always has its state.
        Under several processes rank 0 writes it, with the RNG states of every rank."""
        rng = gather_to_main(self.shard, capture_rng())  # a collective: every rank is here
        if self.recorder is None or rng is None:
            return
        self.recorder.save_checkpoint(LAST_CHECKPOINT, {
            "model": self.task.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": epoch,
            "trainer": {"best_score": best_score, "best_epoch": result.best_epoch,
                        "best_valid": result.best_valid, "stale": stale, "elapsed": elapsed,
                        "epochs": [dataclasses.asdict(r) for r in result.epochs]},
            "rng": rng[0],
            "rng_ranks": rng,
            "data_order": self.generator.get_state(),
            **self.checkpoint_meta,
        }, quiet=True)

    def _train_epoch(self, epoch: int) -> EpochReport:
        model, schedule = self.task.model, self.schedule
        model.train()
        batches = self.task.num_batches(schedule.batch_size)
        if schedule.max_batches is not None:
            batches = min(batches, schedule.max_batches)
        if self.progress is not None:
            self.progress.start_epoch(epoch, batches)
        # Sums stay on the device (float64: the same additions as Python floats; Apple's GPU
        # has no float64), so a step never waits for the device to report its loss.
        sum_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        totals: dict[str, torch.Tensor] = {}
        watch = _DivergenceWatch(self.device, deferred=self.deferred_checks)
        sequences = steps = 0
        meter = PeakMemoryMeter(self.device)
        meter.start()
        started = time.perf_counter()
        for step, batch in enumerate(self.task.batches(schedule.batch_size, self.generator), 1):
            if step > batches:
                break
            self.optimizer.zero_grad(set_to_none=True)
            losses = self.task.step(batch)
            loss = losses["loss"]
            watch.check(loss.detach(), epoch, step)
            loss.backward()
            self.optimizer.step()
            for name, value in losses.items():
                value = value.detach().to(sum_dtype)
                totals[name] = totals[name] + value if name in totals else value
            sequences += self.task.batch_sequences(batch)
            steps += 1
            if self.progress is not None:
                self.progress.advance()
        watch.raise_if_diverged(epoch)  # before last.pt is written: the previous one is kept
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - started
        peak = meter.stop()
        return EpochReport(
            epoch=epoch,
            losses={name: float(total) / max(steps, 1) for name, total in totals.items()},
            seconds=seconds,
            sequences_per_second=sequences / seconds if seconds > 0 else 0.0,
            peak_memory_bytes=peak.bytes,
            memory_kind=peak.kind,
        )

    def _checkpoint(self, name: str, epoch: int) -> None:
        if self.recorder is None:
            return
        self.recorder.save_checkpoint(name, {
            "model": self.task.model.state_dict(),
            "epoch": epoch,
            **self.checkpoint_meta,
        })

    def _record(self, report: EpochReport) -> None:
        if self.recorder is None:
            return
        self.recorder.event(EPOCH, **report.to_event(device=str(self.device)))
