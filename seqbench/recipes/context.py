"""What the runs of one command share: the device, the prepared dataset, and for next-item
training the evaluators and the most-popular baseline (built once, before any run starts, so a
dataset that cannot be evaluated fails before a run directory exists)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from seqbench.config import RunConfig
from seqbench.data.dataset import Dataset
from seqbench.data.prep import prepare
from seqbench.engine.distributed import SINGLE, Shard, barrier
from seqbench.engine.evaluate import Evaluator, MostPopular, TrainStats
from seqbench.errors import SettingError
from seqbench.runs.record import check_runs_dir


@dataclasses.dataclass
class Evaluation:
    """The validation and test evaluators of a dataset and the baseline's test metrics."""

    valid: Evaluator
    test: Evaluator
    baseline: dict[str, Any]

    @classmethod
    def build(cls, config: RunConfig, dataset: Dataset, device: torch.device,
              shard: Shard) -> Evaluation:
        stats = TrainStats.from_dataset(dataset)
        evaluators = {
            split: Evaluator(dataset, split, max_len=config.model.max_len, ks=config.eval.k,
                             protocols=config.eval.protocol, device=device,
                             exclude_seen=config.eval.exclude_seen,
                             sampled_seed=config.eval.sampled_seed,
                             negatives_file=config.eval.negatives_file,
                             batch_size=config.eval.eval_batch_size, stats=stats, shard=shard)
            for split in ("valid", "test")
        }
        baseline = {"model": "most-popular",
                    "test": evaluators["test"](MostPopular(stats.counts, device))}
        return cls(evaluators["valid"], evaluators["test"], baseline)


@dataclasses.dataclass
class BenchContext:
    """What all runs of one command share. `evaluation` is None for pretraining alone."""

    config: RunConfig
    dataset: Dataset
    device: torch.device
    shard: Shard = SINGLE
    evaluation: Evaluation | None = None

    @property
    def valid(self) -> Evaluator:
        return self._evaluation.valid

    @property
    def test(self) -> Evaluator:
        return self._evaluation.test

    @property
    def baseline(self) -> dict[str, Any]:
        return self._evaluation.baseline

    @property
    def _evaluation(self) -> Evaluation:
        if self.evaluation is None:
            raise RuntimeError("this context was prepared without evaluation (evaluate=False)")
        return self.evaluation


def prepare_context(config: RunConfig, *, evaluate: bool = True, console: Any = None,
                    step: Callable[[str], None] | None = None,
                    shard: Shard = SINGLE) -> BenchContext:
    """Check the configuration, prepare the dataset and (with `evaluate`) what every run is
    evaluated with. Under several processes rank 0 prepares the data first and the others
    then reuse the cache, and the evaluators split their batches between the ranks."""
    config.validate()
    device = resolve_device(config.train.device)
    if shard.is_main:
        check_runs_dir(Path(config.train.runs_dir))
    dataset = prepare_dataset(config, shard, console=console, step=step)
    evaluation = Evaluation.build(config, dataset, device, shard) if evaluate else None
    return BenchContext(config, dataset, device, shard, evaluation)


def prepare_dataset(config: RunConfig, shard: Shard = SINGLE, *, console: Any = None,
                    step: Callable[[str], None] | None = None) -> Dataset:
    """The prepared dataset; under several processes rank 0 builds it and the others then
    read the cache (so no two processes build the same entry)."""
    if shard.is_main:
        dataset = prepare(config.data, console=console, step=step).dataset
    barrier(shard)
    if not shard.is_main:
        dataset = prepare(config.data).dataset
    return dataset


def resolve_device(name: str) -> torch.device:
    """`auto` is the GPU when there is one; a device this torch cannot use is an error naming
    it (the configuration has checked the spelling already)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SettingError("train.device", f"{name} asked for a GPU, but torch sees none")
        if device.index is not None and device.index >= count:
            raise SettingError("train.device", f"{name}: torch sees {count} GPU(s), "
                                               f"numbered from 0")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise SettingError("train.device", f"{name} asked for Apple's GPU, but this torch "
                                           f"cannot use one here (try auto or cpu)")
    elif device.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise SettingError("train.device", f"{name} asked for an Intel GPU, but this torch "
                                           f"cannot use one here (try auto or cpu)")
    return device
