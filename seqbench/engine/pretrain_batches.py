"""S3Rec pretraining batches, built with tensor operations (docs/s3rec.md).

Instances are every prefix of every user's *training* sequence (validation and test items never
appear), truncated to the last `max_len` items. Each epoch draws new masks, negatives and
segments for every instance, as the original does, but as a few tensor operations per batch on
the training device instead of a Python loop per instance (the original's `__getitem__`).

Speed on a CPU comes mostly from padding: prefixes are short (S3Rec Beauty: 153,776 prefixes,
mean length ~6), so batches are drawn from length-sorted pools and cut to their longest row.
Sequences are right-aligned, so cutting left padding changes nothing else (positions count from
the right).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from seqbench.data.dataset import Dataset
from seqbench.engine.batches import pad_left
from seqbench.engine.distributed import SINGLE, Shard
from seqbench.engine.losses.sampled import draw_excluding

#: Batches per length-sorted pool: big enough to make batches of similar lengths, small enough
#: that an epoch's batch order stays well mixed.
POOL_BATCHES = 50


@dataclass
class PretrainBatch:
    """One batch of pretraining inputs; ids are item ids (0 = padding, I + 1 = mask)."""

    items: torch.Tensor  # [B, W] the prefixes, unmasked
    masked: torch.Tensor  # [B, W] with masked positions set to the mask id
    is_masked: torch.Tensor  # [B, W] bool; the last position is always masked
    mip_negatives: torch.Tensor  # [M] one item per masked position, never in that prefix
    segment_rows: torch.Tensor  # [S] rows (length >= 2) that take part in segment prediction
    segment_context: torch.Tensor  # [S, W] the prefix with the segment masked
    segment_positive: torch.Tensor  # [S, W] the segment alone, the rest masked
    segment_negative: torch.Tensor  # [S, W] a same-length segment from elsewhere, rest masked


@dataclass
class PretrainData:
    """Prefix instances as (start, end) into the dataset's item array, plus what sampling needs."""

    items: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    long_sequence: torch.Tensor  # all training sequences, concatenated (negative segments)
    num_items: int
    max_len: int

    @classmethod
    def build(cls, dataset: Dataset, max_len: int) -> PretrainData:
        user_starts = dataset.offsets[:-1].astype(np.int64)
        train_lengths = dataset.train_lengths.astype(np.int64)
        firsts = np.repeat(user_starts, train_lengths)
        positions = firsts + _ranges(train_lengths)  # every training item, user by user
        ends = positions + 1  # instance k of a user ends after its (k + 1)-th training item
        starts = np.maximum(firsts, ends - max_len)
        long_sequence = torch.from_numpy(dataset.items[positions].astype(np.int64))
        return cls(items=dataset.items, starts=starts, ends=ends, long_sequence=long_sequence,
                   num_items=dataset.num_items, max_len=max_len)

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def lengths(self) -> np.ndarray:
        return self.ends - self.starts

    def batch_rows(self, batch_size: int, generator: torch.Generator) -> list[np.ndarray]:
        """This epoch's batches (instance indices): shuffled, sorted by length within pools of
        `POOL_BATCHES` batches, cut, and the batches shuffled again."""
        order = torch.randperm(len(self), generator=generator).numpy()
        pool = np.arange(len(order)) // (batch_size * POOL_BATCHES)
        order = order[np.lexsort((self.lengths[order], pool))]
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        shuffle = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in shuffle]

    def padded(self, rows: np.ndarray) -> torch.Tensor:
        """[B, W] right-aligned prefixes, W the longest of the batch."""
        width = int(self.lengths[rows].max())
        return torch.from_numpy(pad_left(self.items, self.starts[rows], self.ends[rows], width))


def make_batch(items: torch.Tensor, *, num_items: int, mask_prob: float,
               long_sequence: torch.Tensor, mask_last: bool = True) -> PretrainBatch:
    """Masks, MIP negatives and segments for right-aligned prefixes `items` [B, W] (on their
    device, from the torch global RNG so a seed repeats a run)."""
    device = items.device
    mask_id = num_items + 1
    real = items != 0
    width = items.shape[1]
    lengths = real.sum(1)

    is_masked = (torch.rand(items.shape, device=device) < mask_prob) & real
    if mask_last:  # the original always masks the last item (a right-aligned prefix's last)
        is_masked[:, -1] = True
    masked = torch.where(is_masked, torch.full_like(items, mask_id), items)

    # MIP: one negative per masked position, uniform over the items not in that prefix
    rows = is_masked.nonzero()[:, 0]
    prefix = items.index_select(0, rows) - 1  # 0-based; padding becomes -1 (never excluded)
    mip_negatives = draw_excluding(prefix, num_items) + 1

    # SP: a segment of length U{1..n//2} at a uniform start; a negative of the same length from
    # a uniform place in all training sequences; prefixes shorter than 2 take no part
    segment_rows = (lengths >= 2).nonzero()[:, 0]
    seq = items.index_select(0, segment_rows)
    n = lengths.index_select(0, segment_rows)
    seg_len = 1 + (torch.rand(n.shape, device=device) * (n // 2)).long()
    start = (torch.rand(n.shape, device=device) * (n - seg_len + 1)).long()
    total = long_sequence.numel()
    neg_start = (torch.rand(n.shape, device=device) * (total - seg_len + 1)).long()
    index = torch.arange(width, device=device) - (width - n)[:, None]  # position in the prefix
    in_segment = (index >= start[:, None]) & (index < (start + seg_len)[:, None])
    mask = torch.full_like(seq, mask_id)
    neg_index = (neg_start[:, None] + index - start[:, None]).clamp(0, max(total - 1, 0))
    negative_items = long_sequence.to(device)[neg_index]
    seq_real = seq != 0
    return PretrainBatch(
        items=items,
        masked=masked,
        is_masked=is_masked,
        mip_negatives=mip_negatives,
        segment_rows=segment_rows,
        segment_context=torch.where(in_segment, mask, seq),
        segment_positive=torch.where(in_segment, seq, torch.where(seq_real, mask, seq)),
        segment_negative=torch.where(in_segment, negative_items,
                                     torch.where(seq_real, mask, seq)),
    )


def iterate_batches(data: PretrainData, batch_size: int, generator: torch.Generator, *,
                    mask_prob: float, device: torch.device, shard: Shard = SINGLE,
                    mask_last: bool = True) -> Iterator[PretrainBatch]:
    """This epoch's batches; under `shard` every rank takes its share of each batch."""
    long_sequence = data.long_sequence.to(device)
    for rows in data.batch_rows(batch_size, generator):
        mine = rows[shard.rank::shard.world]
        if len(mine) == 0:  # a last batch smaller than the number of ranks
            mine = rows[:1]
        items = data.padded(mine).to(device, non_blocking=True)
        yield make_batch(items, num_items=data.num_items, mask_prob=mask_prob,
                         mask_last=mask_last,
                         long_sequence=long_sequence)


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """Concatenated aranges: [0..l0-1, 0..l1-1, ...]."""
    total = int(lengths.sum())
    return np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
