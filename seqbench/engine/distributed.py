"""Multi-process training on `torch.distributed`: who am I, and gathering evaluation results.

A run started by `torchrun` (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) trains
one DistributedDataParallel replica per process: every rank draws the same data order and
takes its share of each batch, gradients are averaged by DDP, only rank 0 writes the run
records and prints. Evaluation splits the evaluation batches between ranks and sums the
per-user results, so the metrics are exactly those of one process evaluating alone.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    """This process's place among `world` processes (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def batch_starts(self, total: int, batch_size: int) -> range:
        """Starts of this process's batches of `range(total)`: every `world`-th batch."""
        return range(self.rank * batch_size, total, batch_size * self.world)


SINGLE = Shard()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device_name: str) -> tuple[Shard, str]:
    """Join the process group torchrun describes; the device this rank should use.

    gloo on CPUs (so it runs anywhere), nccl when the ranks train on CUDA devices.
    """
    if not launched_by_torchrun():
        return SINGLE, device_name
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device_name.startswith("cuda") or (device_name == "auto"
                                                  and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device_name = f"cuda:{local_rank}"
    else:
        device_name = "cpu"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if rank != 0:  # one voice: the other ranks only report problems
        logging.getLogger("seqbench").setLevel(logging.WARNING)
    log.info("distributed: %d processes (%s), this is rank %d", world, dist.get_backend(), rank)
    return Shard(rank, world), device_name


def finish_distributed(shard: Shard) -> None:
    """Leave the process group once every rank is done (clean exit, no warnings)."""
    if shard.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def broadcast_from_main(shard: Shard, value: object) -> object:
    """Rank 0's `value` on every rank (e.g. the path of a checkpoint only rank 0 wrote)."""
    if not shard.active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(shard: Shard, value: object) -> list[object] | None:
    """Every rank's `value`, in rank order, on rank 0 (None elsewhere); every rank must call
    it. Used for what differs between ranks, such as their dropout RNG states."""
    if not shard.active:
        return [value]
    box: list[object] | None = [None] * shard.world if shard.is_main else None
    dist.gather_object(value, box, dst=0)
    return box


def barrier(shard: Shard) -> None:
    if shard.active:
        dist.barrier()


def sum_across(shard: Shard, *arrays: np.ndarray) -> list[np.ndarray]:
    """Element-wise sums of int64 arrays over ranks (each rank filled its own rows, zeros
    elsewhere), so every rank ends with the whole result."""
    if not shard.active:
        return list(arrays)
    out = []
    for array in arrays:
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64))
        if dist.get_backend() == "nccl":
            tensor = tensor.cuda()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        out.append(tensor.cpu().numpy())
    return out


def wrap_ddp(model: torch.nn.Module, device: torch.device, shard: Shard
             ) -> torch.nn.Module | None:
    """The DistributedDataParallel wrapper to run forward through, or None in one process.
    Every model's forward uses all its parameters, so DDP need not search for unused ones."""
    if not shard.active:
        return None
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def any_rank(shard: Shard, flag: bool) -> bool:
    """True on every rank if it is True on any (e.g. "the time limit has passed")."""
    if not shard.active:
        return flag
    tensor = torch.tensor([int(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())
