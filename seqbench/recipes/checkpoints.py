"""Checkpoints a run starts from: a pretraining's encoder (`finetune --from`) and a run's own
last.pt (`--resume`), each checked against what it is loaded into before any training."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from seqbench.data.dataset import Dataset
from seqbench.engine.distributed import SINGLE, Shard
from seqbench.engine.encoder import EncoderShape
from seqbench.engine.trainer import LAST_CHECKPOINT
from seqbench.errors import SeqbenchError
from seqbench.runs.checkpoint import load_checkpoint
from seqbench.runs.read import read_run
from seqbench.runs.schema import ModelKind
from seqbench.vocabulary import ATTRIBUTE_TASKS, variant_name

#: the shape fields a pretrained encoder must share with the model it is loaded into (dropout
#: may differ: it has no weights), with the option a user changes for each
_SHAPE_OPTIONS = {"num_items": "catalogue size", "max_len": "--max-len", "dim": "--dim",
                  "layers": "--layers", "heads": "--heads"}


def load_pretrained_encoder(init_from: Path, dataset: Dataset, shape: EncoderShape
                            ) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]]:
    """The encoder weights of a pretraining checkpoint, checked against what is fine-tuned.

    `init_from` is a checkpoint file or a pretraining run directory (its last epoch). Refuses,
    with the reason, a missing or non-seqbench file, another kind of checkpoint, another dataset
    and another encoder shape. Returns the file, the weights and {rank, epoch, variant}.
    """
    path = resolve_checkpoint(Path(init_from))
    state = load_checkpoint(path)
    kind = state.get("kind")
    if ModelKind.of(kind) is not ModelKind.S3REC_PRETRAIN:
        raise SeqbenchError(f"{path}: a {kind or 'unknown'} checkpoint, not an S3Rec pretraining "
                            f"one (make one with seqbench pretrain)")
    if state.get("dataset_key") != dataset.meta["key"]:
        raise SeqbenchError(f"{path}: pretrained on another dataset ({state.get('dataset')}, "
                            f"cache key {state.get('dataset_key')}) than the one fine-tuned "
                            f"({dataset.name}, key {dataset.meta['key']}); use the same "
                            f"--dataset and --source")
    saved = dict(state.get("shape") or {})
    wanted = dataclasses.asdict(shape)
    for key, option in _SHAPE_OPTIONS.items():
        if saved.get(key) != wanted[key]:
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


def load_resume_state(run_dir: Path, dataset: Dataset, shard: Shard = SINGLE) -> dict[str, Any]:
    """`last.pt` of a run (and the weights of its best.pt), checked against the dataset and
    the number of processes (each rank continues its own RNG streams, so it must match)."""
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


def recorded_processes(run_dir: Path) -> int:
    """How many processes trained the run in `run_dir` (1 when it cannot tell: resuming then
    reports what is wrong with the directory)."""
    view = read_run(run_dir)
    return view.resolved.processes if view is not None else 1


def _processes(count: int) -> str:
    return f"{count} process" + ("es" if count != 1 else "")


def _epoch_number(path: Path) -> int:
    digits = path.stem.removeprefix("epoch-")
    return int(digits) if digits.isdigit() else -1
