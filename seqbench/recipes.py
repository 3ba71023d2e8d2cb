"""Commands as recipes: config -> parts from `data/` and `engine/` -> the one trainer -> `runs/`.

The CLI only parses options and prints; everything a command does is a function here, so it
can be called from Python (and from tests) exactly as the CLI calls it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqbench.config import RunConfig
from seqbench.data.dataset import Dataset
from seqbench.data.prep import prepare
from seqbench.engine.batches import NextItemData
from seqbench.engine.encoder import EncoderShape, count_parameters
from seqbench.engine.evaluate import Evaluator, MostPopular, TrainStats
from seqbench.engine.losses import build_loss, parse_filter_eps
from seqbench.engine.next_item import NextItemTask
from seqbench.engine.sasrec import SASRec
from seqbench.engine.telemetry import device_description
from seqbench.engine.trainer import ProgressSink, Schedule, Trainer, seed_everything
from seqbench.errors import SeqbenchError
from seqbench.runs.record import RunRecorder, check_runs_dir

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """`auto` is the GPU when there is one; naming a GPU that is not there is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SeqbenchError(f"--device {name!r} is not a device (try auto, cpu, cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SeqbenchError(f"--device {name} asked for a GPU, but torch sees none")
    return device


@dataclasses.dataclass
class BenchContext:
    """What all runs of one `bench` share: the data, evaluators and the baseline."""

    config: RunConfig
    dataset: Dataset
    device: torch.device
    valid: Evaluator
    test: Evaluator
    baseline: dict[str, Any]


def prepare_bench(config: RunConfig, *, console: Any = None,
                  step: Callable[[str], None] | None = None) -> BenchContext:
    """Validate options, prepare the dataset, and build what every run evaluates with."""
    config.validate()
    parse_filter_eps(config.train.filter_eps)
    device = resolve_device(config.train.device)
    check_runs_dir(Path(config.train.runs_dir))
    dataset = prepare(config.data, console=console, step=step).dataset
    stats = TrainStats.from_dataset(dataset)
    evaluators = {
        split: Evaluator(dataset, split, max_len=config.model.max_len, ks=config.eval.ks,
                         protocols=config.eval.protocols, device=device,
                         exclude_seen=config.eval.exclude_seen,
                         sampled_seed=config.eval.sampled_seed,
                         batch_size=config.eval.batch_size, stats=stats)
        for split in ("valid", "test")
    }
    baseline = {"model": "most-popular",
                "test": evaluators["test"](MostPopular(stats.counts, device))}
    return BenchContext(config, dataset, device, evaluators["valid"], evaluators["test"],
                        baseline)


def bench(context: BenchContext, *, losses: list[str], seeds: list[int],
          progress: ProgressSink | None = None,
          on_summary: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Train and evaluate SASRec once per (loss, seed), each run recorded in its own directory."""
    summaries = []
    for loss in losses:
        for seed in seeds:
            config = dataclasses.replace(
                context.config, train=dataclasses.replace(context.config.train, loss=loss,
                                                          seed=seed))
            summary = train_next_item(context, config, model_factory=lambda shape: SASRec(shape),
                                      progress=progress)
            summaries.append(summary)
            if on_summary is not None:
                on_summary(summary)
    return summaries


def train_next_item(context: BenchContext, config: RunConfig, *,
                    model_factory: Callable[[EncoderShape], nn.Module],
                    progress: ProgressSink | None = None,
                    extra_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """One recorded run: seed, build model and loss, fit with early stopping, test once."""
    train, dataset, device = config.train, context.dataset, context.device
    generator = seed_everything(train.seed)
    shape = EncoderShape(num_items=dataset.num_items, max_len=config.model.max_len,
                         dim=config.model.dim, layers=config.model.layers,
                         heads=config.model.heads, dropout=config.model.dropout)
    model = model_factory(shape).to(device)
    loss = build_loss(train.loss, num_items=dataset.num_items, device=device,
                      negatives=train.negatives, logq=train.logq,
                      filter_eps=parse_filter_eps(train.filter_eps), block_size=train.block_size)
    autocast = torch.bfloat16 if device.type == "cuda" and train.bf16 else None
    task = NextItemTask(model, loss, NextItemData.build(dataset, config.model.max_len,
                                                        last_only=train.last_only),
                        device=device, evaluator=context.valid, autocast_dtype=autocast)
    optimizer = torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    model_kind = getattr(model, "kind", type(model).__name__.lower())
    resolved = {
        **config.to_dict(),
        **(extra_config or {}),
        "resolved": {"model": model_kind, "loss_backend": loss.backend,
                     "device": device_description(device), "autocast": str(autocast),
                     "parameters": count_parameters(model), "dataset_path": str(dataset.path),
                     "dataset_key": dataset.meta["key"], "dataset_stats": dataset.meta["stats"]},
    }
    log.info("run: %s on %s, loss %s, seed %d", model_kind, dataset.name, loss.backend, train.seed)
    with RunRecorder.create(Path(train.runs_dir), config=resolved,
                            name_parts=[dataset.name, model_kind, train.loss,
                                        f"s{train.seed}"]) as recorder:
        if progress is not None:
            progress.start_run(f"{loss.backend} seed {train.seed}", train.epochs)
        schedule = Schedule(epochs=train.epochs, batch_size=train.batch_size,
                            patience=train.patience,
                            monitor=(config.eval.protocols[0], config.eval.monitor),
                            max_batches=train.max_batches,
                            time_limit_s=(None if train.time_limit_min is None
                                          else train.time_limit_min * 60))
        fit = Trainer(task, optimizer, schedule, device=device, generator=generator,
                      recorder=recorder, progress=progress,
                      checkpoint_meta={"kind": model_kind, "shape": dataclasses.asdict(shape),
                                       "dataset_key": dataset.meta["key"]}).fit()
        model.eval()
        test = task.evaluate(context.test)
        summary = {
            "run_id": recorder.run_id,
            "path": str(recorder.path),
            "dataset": dataset.name,
            "model": model_kind,
            "loss": train.loss,
            "loss_backend": loss.backend,
            "seed": train.seed,
            "device": device_description(device),
            "parameters": count_parameters(model),
            "epochs_run": len(fit.epochs),
            "best_epoch": fit.best_epoch,
            "stopped_early": fit.stopped_early,
            "stop_reason": fit.stop_reason,
            "mean_epoch_seconds": fit.mean_epoch_seconds,
            "peak_memory_bytes": fit.peak_memory_bytes,
            "memory_kind": fit.memory_kind,
            "sequences_per_second": (sum(e.sequences_per_second for e in fit.epochs)
                                     / max(len(fit.epochs), 1)),
            "valid": fit.best_valid,
            "test": test,
            "baseline": context.baseline,
        }
        recorder.finish(summary)
    return summary
