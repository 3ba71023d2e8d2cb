"""Next-item prediction as a trainer `Task`: SASRec training and S3Rec fine-tuning share it.

Every non-padding position of a training sequence predicts the item that follows it (or only
the last position, with `last_only`). The hidden states of those positions and the model's
tied item table go to the loss object, so CE, CCE, BCE and sampled softmax differ only there.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from seqbench.engine.batches import NextItemData
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
        self.data = data
        self.device = device
        self.evaluator = evaluator
        self.autocast_dtype = autocast_dtype

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self.data) // batch_size)

    def batches(self, batch_size: int, generator: torch.Generator
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.data.batches(batch_size, generator, self.shard)

    def batch_sequences(self, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        return int(batch[0].shape[0])

    def step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs, targets = (t.to(self.device, non_blocking=True) for t in batch)
        positions = targets > 0
        with autocast(self.device, self.autocast_dtype):
            hidden = self.forward(inputs)[positions]
            seen = None
            if self.loss.uses_seen:
                window = torch.cat([inputs, targets[:, -1:]], dim=1) - 1  # 0-based, pad = -1
                seen = window[positions.nonzero()[:, 0]]
            loss = self.loss(hidden, self.model.item_table(), targets[positions] - 1, seen=seen)
        return {"loss": loss}

    def validate(self) -> Metrics | None:
        return None if self.evaluator is None else self.evaluate(self.evaluator)

    def evaluate(self, evaluator: Evaluator) -> Metrics:
        """Metrics of the model as it is now (e.g. the test split after training)."""
        self.model.eval()
        with autocast(self.device, self.autocast_dtype):
            return evaluator(self.model)
