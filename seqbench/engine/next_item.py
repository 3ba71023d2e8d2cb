"""Next-item prediction as a trainer `Task`: SASRec training and S3Rec fine-tuning share it.

Every non-padding position of a training sequence predicts the item that follows it (or only
the last position, with `last_only`). The hidden states of those positions and the model's
tied item table go to the loss object, so CE, CCE, BCE and sampled softmax differ only there.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch
from torch import nn

from seqbench.engine.batches import NextItemBatch, NextItemData
from seqbench.engine.distributed import SINGLE, Shard
from seqbench.engine.evaluate import Evaluator
from seqbench.engine.losses import Loss
from seqbench.engine.trainer import Metrics, autocast


class NextItemTask:
    def __init__(self, model: nn.Module, loss: Loss, data: NextItemData, *,
                 device: torch.device, evaluator: Evaluator | None = None,
                 autocast_dtype: torch.dtype | None = None, shard: Shard = SINGLE,
                 forward: nn.Module | None = None) -> None:
        self.model = model
        self.shard = shard
        self.forward = forward or model  # the DistributedDataParallel wrapper, if any
        self.loss = loss
        self.data = data.on(device)
        self.device = device
        self.evaluator = evaluator
        self.autocast_dtype = autocast_dtype

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self.data) // batch_size)

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[NextItemBatch]:
        return self.data.batches(batch_size, generator, self.shard)

    def batch_sequences(self, batch: NextItemBatch) -> int:
        return int(batch.inputs.shape[0])

    def step(self, batch: NextItemBatch) -> dict[str, torch.Tensor]:
        """The loss over the positions that have a target. They are picked by index with
        `nonzero_static` and the count the batch brings from the host: a boolean mask would
        make the host wait for the device to count them, every step."""
        inputs, targets = batch.inputs, batch.targets
        flat_targets = targets.reshape(-1)
        index = target_positions(flat_targets, batch.positions)
        with autocast(self.device, self.autocast_dtype):
            states = self.forward(inputs)
            hidden = states.reshape(-1, states.shape[-1]).index_select(0, index)
            seen = None
            if self.loss.uses_seen:
                window = torch.cat([inputs, targets[:, -1:]], dim=1) - 1  # 0-based, pad = -1
                seen = window.index_select(0, torch.div(index, inputs.shape[1],
                                                        rounding_mode="floor"))
            loss = self.loss(hidden, self.model.item_table(),
                             flat_targets.index_select(0, index) - 1, seen=seen)
        return {"loss": loss}

    def validate(self) -> Metrics | None:
        return None if self.evaluator is None else self.evaluate(self.evaluator)

    def evaluate(self, evaluator: Evaluator) -> Metrics:
        """Metrics of the model as it is now (e.g. the test split after training)."""
        self.model.eval()
        with autocast(self.device, self.autocast_dtype):
            return evaluator(self.model)


def target_positions(flat_targets: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the positions with a target (> 0), in order; `count` of them."""
    if _has_static_nonzero(flat_targets.device):
        return torch.nonzero_static(flat_targets > 0, size=count).squeeze(1)
    return (flat_targets > 0).nonzero().squeeze(1)  # an older torch on this device: a sync


@functools.cache
def _has_static_nonzero(device: torch.device) -> bool:
    """Whether this torch has `nonzero_static` on this device (CUDA gained it after CPU)."""
    try:
        torch.nonzero_static(torch.ones(2, dtype=torch.bool, device=device), size=2)
    except (AttributeError, NotImplementedError, RuntimeError):
        return False
    return True
