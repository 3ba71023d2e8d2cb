"""S3Rec pretraining as a trainer `Task`: the same `Trainer.fit` as SASRec, no validation.

The original selects nothing during pretraining either: it saves the encoder every few epochs
and fine-tunes from one of those checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from seqbench.engine.distributed import SINGLE, Shard
from seqbench.engine.pretrain_batches import PretrainBatch, PretrainData, iterate_batches
from seqbench.engine.s3rec import AttributeIndex, S3RecPretrainer
from seqbench.engine.trainer import Metrics, autocast


class PretrainTask:
    def __init__(self, model: S3RecPretrainer, data: PretrainData,
                 attributes: AttributeIndex | None, *, mask_prob: float, device: torch.device,
                 autocast_dtype: torch.dtype | None = None, shard: Shard = SINGLE,
                 forward: torch.nn.Module | None = None, mask_last: bool = True) -> None:
        self.mask_last = mask_last
        self.model = model
        self.shard = shard
        self.forward = forward or model  # the DistributedDataParallel wrapper, if any
        self.data = data
        self.attributes = attributes
        self.mask_prob = mask_prob
        self.device = device
        self.autocast_dtype = autocast_dtype

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self.data) // batch_size)

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[PretrainBatch]:
        return iterate_batches(self.data, batch_size, generator, mask_prob=self.mask_prob,
                               device=self.device, shard=self.shard, mask_last=self.mask_last)

    def batch_sequences(self, batch: PretrainBatch) -> int:
        return int(batch.items.shape[0])

    def step(self, batch: PretrainBatch) -> dict[str, torch.Tensor]:
        with autocast(self.device, self.autocast_dtype):
            return self.forward(batch, self.attributes)

    def validate(self) -> Metrics | None:
        return None
