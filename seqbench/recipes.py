"""Commands as recipes: config -> parts from `data/` and `engine/` -> the one trainer -> `runs/`.

The CLI only parses options and prints; everything a command does is a function here, so it
can be called from Python (and from tests) exactly as the CLI calls it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from seqbench.config import RunConfig
from seqbench.data.dataset import Dataset
from seqbench.data.prep import prepare
from seqbench.engine.batches import NextItemData
from seqbench.engine.distributed import SINGLE, Shard, any_rank, barrier, wrap_ddp
from seqbench.engine.encoder import EncoderShape, count_parameters
from seqbench.engine.evaluate import Evaluator, MostPopular, TrainStats
from seqbench.engine.losses import build_loss, parse_filter_eps
from seqbench.engine.next_item import NextItemTask
from seqbench.engine.params import parameter_account
from seqbench.engine.pretrain_batches import PretrainData
from seqbench.engine.pretrain_task import PretrainTask
from seqbench.engine.s3rec import (
    AttributeIndex,
    HeadsConfig,
    S3RecPretrainer,
    parse_lowrank_heads,
    tasks_needing_attributes,
)
from seqbench.engine.s3rec_tasks import ATTRIBUTE_TASKS, variant_name
from seqbench.engine.sasrec import SASRec
from seqbench.engine.telemetry import device_description
from seqbench.engine.trainer import ProgressSink, Schedule, Trainer, seed_everything
from seqbench.errors import SeqbenchError
from seqbench.runs.record import RunRecorder, check_runs_dir

if TYPE_CHECKING:
    from seqbench.runs.read import RunView

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
    shard: Shard = SINGLE


def prepare_bench(config: RunConfig, *, console: Any = None,
                  step: Callable[[str], None] | None = None,
                  shard: Shard = SINGLE) -> BenchContext:
    """Validate options, prepare the dataset, and build what every run evaluates with.

    Under several processes rank 0 prepares the data first and the others then reuse the
    cache, and the evaluators split their batches between the ranks."""
    config.validate()
    parse_filter_eps(config.train.filter_eps)
    device = resolve_device(config.train.device)
    if shard.is_main:
        check_runs_dir(Path(config.train.runs_dir))
    dataset = _prepare_dataset(config, shard, console=console, step=step)
    stats = TrainStats.from_dataset(dataset)
    evaluators = {
        split: Evaluator(dataset, split, max_len=config.model.max_len, ks=config.eval.ks,
                         protocols=config.eval.protocols, device=device,
                         exclude_seen=config.eval.exclude_seen,
                         sampled_seed=config.eval.sampled_seed,
                         batch_size=config.eval.batch_size, stats=stats, shard=shard)
        for split in ("valid", "test")
    }
    baseline = {"model": "most-popular",
                "test": evaluators["test"](MostPopular(stats.counts, device))}
    return BenchContext(config, dataset, device, evaluators["valid"], evaluators["test"],
                        baseline, shard)


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
                    extra_config: dict[str, Any] | None = None,
                    resume_from: Path | None = None) -> dict[str, Any]:
    """One recorded run: seed, build model and loss, fit with early stopping, test once.
    With `resume_from` (a run directory) it continues that run from its `last.pt`."""
    train, dataset, device = config.train, context.dataset, context.device
    generator = seed_everything(train.seed)
    shape = _shape(config, dataset)
    model = model_factory(shape).to(device)
    loss = build_loss(train.loss, num_items=dataset.num_items, device=device,
                      negatives=train.negatives, logq=train.logq,
                      filter_eps=parse_filter_eps(train.filter_eps), block_size=train.block_size)
    autocast = torch.bfloat16 if device.type == "cuda" and train.bf16 else None
    shard = context.shard
    # under several processes: gradients averaged over ranks (the item table is read outside
    # forward, which DDP handles: its hooks fire once a parameter's gradient is complete)
    forward = wrap_ddp(model, device, shard)
    task = NextItemTask(model, loss, NextItemData.build(dataset, config.model.max_len,
                                                        last_only=train.last_only),
                        device=device, evaluator=context.valid, autocast_dtype=autocast,
                        shard=shard, forward=forward)
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
    resume, recorder = _start_recording(shard, dataset, resume_from, Path(train.runs_dir),
                                        resolved, [dataset.name, model_kind, train.loss,
                                                   f"s{train.seed}"])
    progress = progress if shard.is_main else None
    with recorder if recorder is not None else contextlib.nullcontext():
        if progress is not None:
            progress.start_run(f"{loss.backend} seed {train.seed}", train.epochs)
        schedule = Schedule(epochs=train.epochs, batch_size=train.batch_size,
                            patience=train.patience,
                            monitor=(config.eval.protocols[0], config.eval.monitor),
                            max_batches=train.max_batches,
                            time_limit_s=_seconds(train.time_limit_min),
                            agree=_agreement(shard))
        fit = Trainer(task, optimizer, schedule, device=device, generator=generator,
                      recorder=recorder, progress=progress,
                      checkpoint_meta={"kind": model_kind, "shape": dataclasses.asdict(shape),
                                       "dataset_key": dataset.meta["key"]},
                      shard=shard).fit(resume)
        model.eval()
        test = task.evaluate(context.test)
        summary = {
            "run_id": recorder.run_id if recorder else None,
            "path": str(recorder.path) if recorder else None,
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
        if recorder is not None:
            recorder.finish(summary)
    return summary


# ---------------------------------------------------------------------------------------------
# S3Rec: pretrain, then fine-tune (design.md section 5)

PRETRAIN_KIND = "s3rec-pretrain"


def pretrain(config: RunConfig, *, rank: int | None = None, console: Any = None,
             step: Callable[[str], None] | None = None, progress: ProgressSink | None = None,
             resume_from: Path | None = None, shard: Shard = SINGLE) -> dict[str, Any]:
    """One recorded S3Rec pretraining run; a `rank` makes it low-rank with that rank.
    With `resume_from` (a pretraining run directory) it continues that run."""
    pre = config.pretrain
    if rank is not None:
        pre = dataclasses.replace(pre, rank=rank, lowrank=True)
    config = dataclasses.replace(config, pretrain=pre)
    config.validate()
    train = config.train
    device = resolve_device(train.device)
    if shard.is_main:
        check_runs_dir(Path(train.runs_dir))
    dataset = _prepare_dataset(config, shard, console=console, step=step)
    needing = tasks_needing_attributes(pre.weights)
    if needing and not (dataset.has_attributes and dataset.num_attributes > 0):
        names = " and ".join(t.upper() for t in needing)
        switch = " ".join(f"--{t}-weight 0" for t in needing)
        raise SeqbenchError(f"dataset {dataset.name} has no item attributes, so {names} cannot "
                            f"run; switch them off with {switch} (MIP and SP need none)")
    generator = seed_everything(train.seed)
    shape = _shape(config, dataset)
    heads = HeadsConfig(weights=pre.weights, rank=pre.rank if pre.lowrank else None,
                        lowrank_heads=parse_lowrank_heads(pre.lowrank_heads))
    model = S3RecPretrainer(shape, dataset.num_attributes, heads).to(device)
    account = parameter_account(model)
    attributes = AttributeIndex(dataset, device) if needing else None
    autocast = torch.bfloat16 if device.type == "cuda" and train.bf16 else None
    forward = wrap_ddp(model, device, shard)
    task = PretrainTask(model, PretrainData.build(dataset, shape.max_len), attributes,
                        mask_prob=pre.mask_prob, mask_last=pre.mask_last, device=device,
                        autocast_dtype=autocast,
                        shard=shard, forward=forward)
    optimizer = torch.optim.Adam(model.parameters(), lr=pre.lr, weight_decay=train.weight_decay)
    variant = heads.variant
    resolved = {
        **config.to_dict(),
        "resolved": {"model": PRETRAIN_KIND, "device": device_description(device),
                     "autocast": str(autocast), "tasks": list(heads.tasks),
                     "lowrank_heads": list(heads.lowrank_heads) if heads.rank else [],
                     "rank": heads.rank, "parameters": account.total,
                     "parameter_account": account.to_dict(), "instances": len(task.data),
                     "dataset_path": str(dataset.path), "dataset_key": dataset.meta["key"],
                     "dataset_stats": dataset.meta["stats"]},
    }
    log.info("pretrain: S3Rec (%s) on %s, tasks %s", variant, dataset.name,
             ", ".join(heads.tasks))
    resume, recorder = _start_recording(shard, dataset, resume_from, Path(train.runs_dir),
                                        resolved, [dataset.name, PRETRAIN_KIND, variant,
                                                   f"s{train.seed}"])
    progress = progress if shard.is_main else None
    with recorder if recorder is not None else contextlib.nullcontext():
        if progress is not None:
            progress.start_run(f"pretrain {variant} seed {train.seed}", pre.epochs)
        schedule = Schedule(epochs=pre.epochs, batch_size=pre.batch_size,
                            max_batches=train.max_batches,
                            checkpoint_every=pre.checkpoint_every,
                            time_limit_s=_seconds(train.time_limit_min),
                            agree=_agreement(shard))
        meta = {"kind": PRETRAIN_KIND, "shape": dataclasses.asdict(shape),
                "dataset_key": dataset.meta["key"], "dataset": dataset.name,
                "num_attributes": dataset.num_attributes, "rank": heads.rank,
                "lowrank_heads": list(heads.lowrank_heads)}
        fit = Trainer(task, optimizer, schedule, device=device, generator=generator,
                      recorder=recorder, progress=progress, checkpoint_meta=meta,
                      shard=shard).fit(resume)
        last = fit.epochs[-1]
        summary = {
            "run_id": recorder.run_id if recorder else None,
            "path": str(recorder.path) if recorder else None,
            "dataset": dataset.name,
            "model": PRETRAIN_KIND,
            "variant": variant,
            "seed": train.seed,
            "device": device_description(device),
            "tasks": list(heads.tasks),
            "first_losses": fit.epochs[0].losses,
            "final_losses": last.losses,
            "epochs_run": len(fit.epochs),
            "stop_reason": fit.stop_reason,
            "checkpoint": str(recorder.path / f"epoch-{last.epoch}.pt") if recorder else None,
            "mean_epoch_seconds": fit.mean_epoch_seconds,
            "peak_memory_bytes": fit.peak_memory_bytes,
            "memory_kind": fit.memory_kind,
            "sequences_per_second": (sum(e.sequences_per_second for e in fit.epochs)
                                     / len(fit.epochs)),
            "parameters": account.total,
            "parameter_account": account.to_dict(),
        }
        if recorder is not None:
            recorder.finish(summary)
    return summary


# recorded in config.json's [finetune] table beside its options, but facts about the run's
# start rather than options: a resumed run continues from its own last.pt, not from these
FINETUNE_PROVENANCE = {"init_from", "pretrain_rank", "pretrain_variant", "pretrain_epoch"}


def finetune(context: BenchContext, config: RunConfig, *, init_from: Path | None,
             progress: ProgressSink | None = None) -> dict[str, Any]:
    """Next-item fine-tuning of SASRec, starting from a pretrained S3Rec encoder if given."""
    init_state: dict[str, torch.Tensor] | None = None
    provenance: dict[str, Any] = {"init_from": None}
    if init_from is not None:
        checkpoint_path, init_state, meta = load_pretrained_encoder(init_from, context.dataset,
                                                                    _shape(config, context.dataset))
        provenance = {"init_from": str(checkpoint_path), "pretrain_rank": meta["rank"],
                      "pretrain_variant": meta["variant"], "pretrain_epoch": meta["epoch"]}
    extra = {"finetune": provenance}  # the loss used is [train] loss

    def model_factory(shape: EncoderShape) -> nn.Module:
        model = SASRec(shape)
        if init_state is not None:
            model.load_state_dict(init_state)
            model.kind = "s3rec"  # the run is named and recorded as S3Rec (pretrained)
        return model

    return train_next_item(context, config, model_factory=model_factory, progress=progress,
                           extra_config=extra)


def load_pretrained_encoder(init_from: Path, dataset: Dataset, shape: EncoderShape
                            ) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]]:
    """The encoder weights of a pretraining checkpoint, checked against what is fine-tuned.

    `init_from` is a checkpoint file or a pretraining run directory (its last epoch). Refuses,
    with the reason, a missing or non-seqbench file, another kind of checkpoint, another dataset
    and another encoder shape (dropout may differ: it has no weights).
    """
    from seqbench.runs.record import load_checkpoint

    path = resolve_checkpoint(Path(init_from))
    state = load_checkpoint(path)
    kind = state.get("kind")
    if kind != PRETRAIN_KIND:
        raise SeqbenchError(f"{path}: a {kind or 'unknown'} checkpoint, not an S3Rec pretraining "
                            f"one (make one with seqbench pretrain)")
    if state.get("dataset_key") != dataset.meta["key"]:
        raise SeqbenchError(f"{path}: pretrained on another dataset ({state.get('dataset')}, "
                            f"cache key {state.get('dataset_key')}) than the one fine-tuned "
                            f"({dataset.name}, key {dataset.meta['key']}); use the same "
                            f"--dataset and --source")
    saved = dict(state.get("shape") or {})
    wanted = dataclasses.asdict(shape)
    for key in ("num_items", "max_len", "dim", "layers", "heads"):
        if saved.get(key) != wanted[key]:
            option = {"num_items": "catalogue size", "max_len": "--max-len"}.get(
                key, f"--{key}")
            raise SeqbenchError(f"{path}: pretrained with {key} = {saved.get(key)} but "
                                f"fine-tuning uses {wanted[key]} ({option}); they must match")
    encoder = {k: v for k, v in state["model"].items() if k.startswith("encoder.")}
    if not encoder:
        raise SeqbenchError(f"{path}: the checkpoint holds no encoder weights")
    heads = state.get("lowrank_heads") or ATTRIBUTE_TASKS
    meta = {"rank": state.get("rank"), "epoch": state.get("epoch"),
            "variant": variant_name(state.get("rank"), heads)}
    return path, encoder, meta


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint file as is; a run directory -> its last `epoch-N.pt`."""
    if path.is_dir():
        candidates = sorted(path.glob("epoch-*.pt"), key=_epoch_number)
        if not candidates:
            raise SeqbenchError(f"{path}: a directory without epoch-N.pt checkpoints "
                                f"(expected a seqbench pretrain run or a .pt file)")
        return candidates[-1]
    if not path.exists():
        raise SeqbenchError(f"{path}: no such checkpoint or run directory")
    return path


def _epoch_number(path: Path) -> int:
    digits = path.stem.removeprefix("epoch-")
    return int(digits) if digits.isdigit() else -1


def _shape(config: RunConfig, dataset: Dataset) -> EncoderShape:
    model = config.model
    return EncoderShape(num_items=dataset.num_items, max_len=model.max_len, dim=model.dim,
                        layers=model.layers, heads=model.heads, dropout=model.dropout)


def _prepare_dataset(config: RunConfig, shard: Shard, *, console: Any,
                     step: Callable[[str], None] | None) -> Dataset:
    """The prepared dataset; under several processes rank 0 builds it and the others then
    read the cache (so no two processes build the same entry)."""
    if shard.is_main:
        dataset = prepare(config.data, console=console, step=step).dataset
    barrier(shard)
    if not shard.is_main:
        dataset = prepare(config.data).dataset
    return dataset


def _start_recording(shard: Shard, dataset: Dataset, resume_from: Path | None, runs_dir: Path,
                     config: dict[str, Any], name_parts: list[str]
                     ) -> tuple[dict[str, Any] | None, RunRecorder | None]:
    """The state to resume from (None for a new run) and the run's recorder on rank 0 (None
    elsewhere): a new run directory, or the one being resumed (with its "resumed" event)."""
    if shard.active:
        config["resolved"]["processes"] = shard.world
    resume = None if resume_from is None else load_resume_state(resume_from, dataset, shard)
    if not shard.is_main:
        return resume, None
    if resume_from is None:
        return resume, RunRecorder.create(runs_dir, config=config, name_parts=name_parts)
    recorder = RunRecorder.reopen(resume_from)
    if resume is not None:
        _record_resumed(recorder, resume, config["train"]["time_limit_min"])
    return resume, recorder


def _agreement(shard: Shard) -> Callable[[bool], bool] | None:
    """How ranks agree on stopping (None in a single process)."""
    return (lambda flag: any_rank(shard, flag)) if shard.active else None


def _seconds(minutes: float | None) -> float | None:
    return None if minutes is None else minutes * 60


# ---------------------------------------------------------------------------------------------
# resume: continue a killed or interrupted run from its last.pt


def resume_run(run_dir: Path, *, expected: str | None = None, console: Any = None,
               step: Callable[[str], None] | None = None,
               progress: ProgressSink | None = None,
               join: Callable[[RunConfig], Shard] | None = None,
               time_limit_min: float | None = None) -> dict[str, Any]:
    """Continue the run in `run_dir` with its own recorded configuration.

    `expected` is the command asking ("bench", "pretrain" or "finetune"), to refuse e.g.
    `pretrain --resume` on a SASRec run. `join` makes this process one of several (under
    torchrun; it may set the rank's device in the config). Ends exactly as the uninterrupted
    run would (CPU). `time_limit_min` replaces the run's time limit (minutes over the whole
    run): so a run that stopped at its limit can go on, e.g. a CPU pretraining done in parts.
    """
    from seqbench.runs.read import read_run, run_writer

    run_dir = Path(run_dir)
    view = read_run(run_dir)
    if view is None:
        raise SeqbenchError(f"{run_dir}: not a seqbench run directory (no readable config.json)")
    recorded = view.config
    kind = (recorded.get("resolved") or {}).get("model")
    command = {"sasrec": "bench", "s3rec": "finetune", PRETRAIN_KIND: "pretrain"}.get(kind)
    if command is None:
        raise SeqbenchError(f"{run_dir}: a run of unknown kind {kind!r}; cannot resume it")
    if expected is not None and expected != command and {expected, command} != {"bench",
                                                                                  "finetune"}:
        raise SeqbenchError(f"{run_dir}: a {command} run; resume it with "
                            f"seqbench {command} --resume")
    if view.status == "finished":
        _check_extension(run_dir, view, time_limit_min)
    if view.status == "running":
        writer = run_writer(view.config, view.events)
        raise SeqbenchError(f"{run_dir}: this run is still being written (process "
                            f"{writer.get('pid', '?')} on {writer.get('hostname', '?')}); stop "
                            f"it first, or resume it on the machine that ran it")
    config = config_from_record(recorded, run_dir)
    if time_limit_min is not None:
        config.train.time_limit_min = time_limit_min
        config.train.validate()  # the same check as a new run's --time-limit
    shard = join(config) if join is not None else SINGLE
    if command == "pretrain":
        return pretrain(config, rank=config.pretrain.rank if config.pretrain.lowrank else None,
                        console=console, step=step, progress=progress, resume_from=run_dir,
                        shard=shard)
    context = prepare_bench(config, console=console, step=step, shard=shard)

    def model_factory(shape: EncoderShape) -> nn.Module:
        model = SASRec(shape)
        model.kind = kind
        return model

    return train_next_item(context, config, model_factory=model_factory, progress=progress,
                           resume_from=run_dir)


def _check_extension(run_dir: Path, view: RunView, time_limit_min: float | None) -> None:
    """A finished run goes on only if its time limit stopped it and a longer one is given."""
    stopped_by = (view.summary or {}).get("stop_reason")
    limit = (view.config.get("train") or {}).get("time_limit_min")
    if stopped_by != "time-limit" or not isinstance(limit, (int, float)):
        raise SeqbenchError(f"{run_dir}: this run finished; there is nothing to resume")
    if time_limit_min is None or time_limit_min <= limit:
        given = "" if time_limit_min is None else f" (got {time_limit_min:g})"
        raise SeqbenchError(f"{run_dir}: this run stopped at its {limit:g}-minute time limit; "
                            f"to go on, resume it with a longer --time-limit{given}, in minutes "
                            f"over the whole run")


def config_from_record(recorded: dict[str, Any], run_dir: Path) -> RunConfig:
    """The RunConfig a run was started with, from its config.json."""
    from seqbench.config import load_config

    tables = {f.name: {k: v for k, v in (recorded.get(f.name) or {}).items() if v is not None}
              for f in dataclasses.fields(RunConfig)}
    for key in FINETUNE_PROVENANCE:
        tables["finetune"].pop(key, None)
    try:
        return load_config(None, tables)
    except SeqbenchError as exc:
        raise SeqbenchError(f"{run_dir / 'config.json'}: {exc}") from None


def load_resume_state(run_dir: Path, dataset: Dataset, shard: Shard = SINGLE) -> dict[str, Any]:
    """`last.pt` of a run (and the weights of its best.pt), checked against the dataset and
    the number of processes (each rank continues its own RNG streams, so it must match)."""
    from seqbench.engine.trainer import LAST_CHECKPOINT
    from seqbench.runs.record import load_checkpoint

    path = Path(run_dir) / f"{LAST_CHECKPOINT}.pt"
    if not path.exists():
        raise SeqbenchError(f"{run_dir}: no last.pt to resume from (the run stopped before its "
                            f"first epoch ended); start it again instead")
    state = load_checkpoint(path)
    if state.get("dataset_key") != dataset.meta["key"]:
        raise SeqbenchError(f"{path}: recorded on dataset cache {state.get('dataset_key')}, "
                            f"but the prepared data is now {dataset.meta['key']}; the source "
                            f"files changed")
    processes = len(state.get("rng_ranks") or [state["rng"]])
    if processes != shard.world:
        raise SeqbenchError(f"{run_dir}: trained with {_processes(processes)} but resumed with "
                            f"{_processes(shard.world)}; resume it with {processes} (`--resume` "
                            f"alone starts them itself)")
    best = Path(run_dir) / "best.pt"
    if state["trainer"]["best_valid"] is not None and best.exists():
        state["best_model"] = load_checkpoint(best)["model"]
    return state


def _processes(count: int) -> str:
    return f"{count} process" + ("es" if count != 1 else "")


def recorded_processes(run_dir: Path) -> int:
    """How many processes trained the run in `run_dir` (1 when it cannot tell: resuming then
    reports what is wrong with the directory)."""
    from seqbench.runs.read import read_run

    view = read_run(run_dir)
    resolved = (view.config.get("resolved") if view is not None else None) or {}
    processes = resolved.get("processes", 1) if isinstance(resolved, dict) else 1
    return processes if isinstance(processes, int) and processes > 1 else 1


def _record_resumed(recorder: RunRecorder, state: dict[str, Any],
                    time_limit_min: float | None) -> None:
    """A "resumed" event; the epoch event a kill may have cut off after last.pt was saved; and
    a time limit given with `--resume`, written into config.json so the record stays true."""
    from seqbench.runs.read import current_writer, read_events_since

    previous = recorder.amend_config("train", "time_limit_min", time_limit_min)

    events, _ = read_events_since(recorder.path, 0)
    recorded = [e.get("epoch") for e in events if e.get("event") == "epoch"]
    last = state["trainer"]["epochs"][-1] if state["trainer"]["epochs"] else None
    if last is not None and last["epoch"] not in recorded:
        recorder.event("epoch", epoch=last["epoch"], train_loss=last["losses"].get("loss"),
                       losses=last["losses"], valid=last["valid"],
                       epoch_seconds=last["seconds"], valid_seconds=last["valid_seconds"],
                       sequences_per_second=last["sequences_per_second"],
                       peak_memory_bytes=last["peak_memory_bytes"],
                       memory_kind=last["memory_kind"], improved=last["improved"],
                       restored=True)
    changed = ({"time_limit_min": time_limit_min, "previous_time_limit_min": previous}
               if time_limit_min != previous else {})
    recorder.event("resumed", from_epoch=state["epoch"], **changed, **current_writer())
