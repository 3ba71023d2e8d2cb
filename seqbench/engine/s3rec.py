"""S3Rec pretraining (Zhou et al., CIKM 2020): the shared encoder plus four self-supervised heads.

Tasks (docs/s3rec.md), each scoring `sigma(e . (W h + b))` with its own W:

* AAP, associated attribute prediction: at unmasked positions, BCE over every attribute against
  the item's attribute set;
* MIP, masked item prediction: at masked positions, pairwise `-log sigma(s+ - s-)` of the
  original item against one item outside the prefix, with s the sigmoid scores (as the
  original: `pairwise_loss`);
* MAP, masked attribute prediction: AAP's loss at masked positions (the hidden item's attributes);
* SP, segment prediction: the last state of the prefix with a segment masked scores the segment
  alone against a same-length segment from elsewhere, pairwise.

Attention is bidirectional. Each task's loss is its sum over positions (and attributes), divided
by the number of instances in the batch; the total is `0.2 AAP + 1.0 MIP + 1.0 MAP + 0.5 SP` by
default. With `rank`, the W of the heads in `lowrank_heads` is V U^T of rank <= r (`heads`).
After pretraining only the encoder is kept: fine-tuning loads it into SASRec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqbench.data.dataset import Dataset
from seqbench.engine.encoder import INIT_STD, EncoderShape, TransformerEncoder, init_weights
from seqbench.engine.heads import LowRankLinear, bilinear_head
from seqbench.engine.pretrain_batches import PretrainBatch
from seqbench.vocabulary import ATTRIBUTE_TASKS, TASKS, variant_name

DEFAULT_WEIGHTS = {"aap": 0.2, "mip": 1.0, "map": 1.0, "sp": 0.5}


@dataclass(frozen=True)
class HeadsConfig:
    """Which tasks run (weight > 0) and which heads are low-rank, with what rank."""

    weights: Mapping[str, float]
    rank: int | None = None
    lowrank_heads: tuple[str, ...] = ATTRIBUTE_TASKS

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(t for t in TASKS if self.weights.get(t, 0.0) > 0)

    def rank_of(self, task: str) -> int | None:
        return self.rank if task in self.lowrank_heads else None

    @property
    def variant(self) -> str:
        return variant_name(self.rank, self.lowrank_heads)


class AttributeIndex:
    """Item -> attribute ids (CSR) on the training device, for gathering BCE targets."""

    def __init__(self, dataset: Dataset, device: torch.device) -> None:
        if dataset.attr_offsets is None or dataset.attr_values is None:
            raise ValueError(f"dataset {dataset.name} has no item attributes")
        self.num_attributes = dataset.num_attributes
        self.offsets = torch.from_numpy(dataset.attr_offsets.astype(np.int64)).to(device)
        self.values = torch.from_numpy(dataset.attr_values.astype(np.int64)).to(device)

    def pairs(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row, 0-based attribute) for every attribute of every item in `items` [P]."""
        first = self.offsets[items]
        counts = self.offsets[items + 1] - first
        rows = torch.repeat_interleave(torch.arange(items.numel(), device=items.device), counts)
        within = torch.arange(rows.numel(), device=items.device) - torch.repeat_interleave(
            counts.cumsum(0) - counts, counts)
        return rows, self.values[first.repeat_interleave(counts) + within] - 1


class S3RecPretrainer(nn.Module):
    """Encoder + attribute embeddings + one bilinear head per enabled task."""

    def __init__(self, shape: EncoderShape, num_attributes: int, heads: HeadsConfig) -> None:
        super().__init__()
        unknown = set(heads.weights) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown pretraining tasks: {sorted(unknown)}")
        if not heads.tasks:
            raise ValueError("every pretraining task is switched off")
        self.shape = shape
        self.config = heads
        self.encoder = TransformerEncoder(shape)
        needs_attributes = any(t in ATTRIBUTE_TASKS for t in heads.tasks)
        if needs_attributes and num_attributes < 1:
            raise ValueError("AAP/MAP need item attributes")
        self.num_attributes = num_attributes
        self.attribute_emb = nn.Embedding(num_attributes, shape.dim) if needs_attributes else None
        self.heads = nn.ModuleDict({t: bilinear_head(shape.dim, heads.rank_of(t))
                                    for t in heads.tasks})
        for module in (self.attribute_emb, self.heads):
            if module is not None:
                module.apply(init_weights)
        for head in self.heads.values():
            if isinstance(head, LowRankLinear):
                head.reset_parameters(INIT_STD)

    def forward(self, batch: PretrainBatch, attributes: AttributeIndex | None
                ) -> dict[str, torch.Tensor]:
        """Each enabled task's loss (sum over the batch / instances) and the weighted "loss"."""
        tasks = self.config.tasks
        instances = batch.items.shape[0]
        sequences = [batch.masked]
        with_sp = "sp" in tasks and batch.segment_rows.numel() > 0
        if with_sp:
            sequences += [batch.segment_context, batch.segment_positive, batch.segment_negative]
        hidden = self.encoder(torch.cat(sequences), causal=False)
        states = hidden[:instances]
        losses: dict[str, torch.Tensor] = {}
        if "aap" in tasks:
            keep = (batch.items != 0) & ~batch.is_masked
            losses["aap"] = self._attribute_loss("aap", states[keep], batch.items[keep], attributes)
        if "map" in tasks:
            losses["map"] = self._attribute_loss("map", states[batch.is_masked],
                                                 batch.items[batch.is_masked], attributes)
        if "mip" in tasks:
            query = self.heads["mip"](states[batch.is_masked]).float()
            positive = self.encoder.item_emb(batch.items[batch.is_masked]).float()
            negative = self.encoder.item_emb(batch.mip_negatives).float()
            losses["mip"] = pairwise_loss((query * positive).sum(-1),
                                          (query * negative).sum(-1)).sum()
        if "sp" in tasks:
            if with_sp:
                last = hidden[instances:, -1].float().view(3, -1, self.shape.dim)
                context = self.heads["sp"](last[0])
                losses["sp"] = pairwise_loss((context * last[1]).sum(-1),
                                             (context * last[2]).sum(-1)).sum()
            else:  # every prefix shorter than 2: no segment to predict in this batch; the
                # head still runs (on no rows), so DDP sees every parameter used every step
                losses["sp"] = self.heads["sp"](hidden[:0, -1]).sum() * 0.0
        losses = {task: value / instances for task, value in losses.items()}
        losses["loss"] = sum(self.config.weights[t] * losses[t] for t in tasks)
        return losses

    def _attribute_loss(self, task: str, states: torch.Tensor, items: torch.Tensor,
                        attributes: AttributeIndex | None) -> torch.Tensor:
        """BCE-with-logits summed over positions and all attributes; the positive term is a
        gather of the items' attribute lists, so no [positions, attributes] target is built."""
        assert self.attribute_emb is not None and attributes is not None
        scores = (self.heads[task](states) @ self.attribute_emb.weight.T).float()
        rows, columns = attributes.pairs(items)
        return F.softplus(scores).sum() - scores[rows, columns].sum()

    def encoder_state(self) -> dict[str, torch.Tensor]:
        """What fine-tuning loads: the encoder's weights, keyed as in `SASRec`."""
        return {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}


def pairwise_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """MIP's and SP's loss as the original computes it: `BCE(sigma(s+ - s-), 1)` of the
    *sigmoid* scores `s = sigma(logit)`. The margin lies in (-1, 1), so the loss is bounded and
    its gradient small. Scoring the logits directly (`-log sigma(l+ - l-)`) fine-tuned worse on
    `synthetic` after 100 pretraining epochs (full NDCG@10 .1633 vs .1767,
    benchmarks/pretrain_transfer.py).
    """
    return F.softplus(-(torch.sigmoid(positive) - torch.sigmoid(negative)))


def tasks_needing_attributes(weights: Mapping[str, float]) -> list[str]:
    return [t for t in ATTRIBUTE_TASKS if weights.get(t, 0.0) > 0]


def describe_tasks(weights: Mapping[str, float], order: Sequence[str] = TASKS) -> str:
    return ", ".join(f"{t.upper()} {weights.get(t, 0.0):g}" for t in order)
