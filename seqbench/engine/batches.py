"""Turning a prepared `Dataset` into right-aligned id matrices for training and evaluation.

All matrices are built once, vectorised, from the CSR arrays (no Python loop over users), and
batches are row slices of them, so an epoch's data order is one permutation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from seqbench.data.dataset import Dataset
from seqbench.engine.distributed import SINGLE, Shard


def pad_left(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
    """Rows `items[start:end]`, keeping the last `width` ids, right-aligned with 0 padding."""
    index = ends[:, None] - width + np.arange(width)[None, :]
    valid = index >= starts[:, None]
    return np.where(valid, items[np.clip(index, 0, max(len(items) - 1, 0))], 0).astype(np.int64)


class NextItemBatch(NamedTuple):
    """A batch of next-item instances, gathered where the model runs, and how many of its
    positions carry a target (known on the host, so selecting them needs no sync)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    positions: int


@dataclass
class NextItemData:
    """Training instances: inputs s[:-1] and targets s[1:] of each user's training sequence.

    One instance per user with at least two training items, truncated to the last `max_len`
    positions (as SASRec does). With `last_only`, only the final position carries a target.
    The matrices are copied to the device once (`on`), and each batch is gathered there from
    a permutation copied once an epoch: no host-to-device copy per step. They are small:
    S3Rec Beauty is 22k x 50 ids, ML-20M 138k x 50.
    """

    users: np.ndarray
    inputs: np.ndarray
    targets: np.ndarray
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _inputs: torch.Tensor | None = field(default=None, repr=False)
    _targets: torch.Tensor | None = field(default=None, repr=False)
    _counts: np.ndarray | None = field(default=None, repr=False)

    def on(self, device: torch.device) -> NextItemData:
        """Keep the matrices on `device` (where the batches are then gathered)."""
        self.device = device
        self._inputs = torch.from_numpy(self.inputs).to(device)
        self._targets = torch.from_numpy(self.targets).to(device)
        self._counts = (self.targets > 0).sum(1)
        return self

    @classmethod
    def build(cls, dataset: Dataset, max_len: int, *, last_only: bool = False) -> NextItemData:
        starts = dataset.offsets[:-1]
        ends = starts + dataset.train_lengths
        users = np.flatnonzero(dataset.train_lengths >= 2)
        inputs = pad_left(dataset.items, starts[users], ends[users] - 1, max_len)
        targets = pad_left(dataset.items, starts[users] + 1, ends[users], max_len)
        if last_only:
            targets[:, :-1] = 0
        return cls(users=users, inputs=inputs, targets=targets)

    def __len__(self) -> int:
        return len(self.users)

    def batches(self, batch_size: int, generator: torch.Generator, shard: Shard = SINGLE
                ) -> Iterator[NextItemBatch]:
        """Batches in a random order drawn from `generator` (reproducible). Under `shard`,
        every rank draws the same order and takes its share of each batch."""
        if self._inputs is None or self._targets is None or self._counts is None:
            self.on(self.device)
        assert self._inputs is not None and self._targets is not None
        assert self._counts is not None
        order = torch.randperm(len(self), generator=generator)
        on_device = order.to(self.device)  # one copy an epoch
        order_np = order.numpy()
        for start in range(0, len(order), batch_size):
            rows = on_device[start:start + batch_size][shard.rank::shard.world]
            chosen = order_np[start:start + batch_size][shard.rank::shard.world]
            yield NextItemBatch(self._inputs[rows], self._targets[rows],
                                int(self._counts[chosen].sum()))


@dataclass
class HoldoutData:
    """Evaluation instances of one window: input sequence, target(s), and the full history.

    Leave-one-out valid: input s[:-2], target s[-2]; test: input s[:-1], target s[-1].
    Temporal: input everything before the window, targets every item in it
    (docs/datasets.md). `targets` is the first target (what HR, NDCG and MRR rank);
    `target_starts/ends` delimit all of them in `dataset.items` (Recall, Precision, MAP).
    `history_starts/ends` delimit the whole input sequence (not only its last `max_len`
    ids), which is what seen-item exclusion removes.
    """

    users: np.ndarray
    inputs: np.ndarray
    targets: np.ndarray | None  # None: histories to recommend for, nothing held out
    history_starts: np.ndarray
    history_ends: np.ndarray
    target_starts: np.ndarray | None = None
    target_ends: np.ndarray | None = None

    @classmethod
    def build(cls, dataset: Dataset, split: str, max_len: int) -> HoldoutData:
        users, starts, ends, target_ends = dataset.holdout(split)
        targets = dataset.items[ends].astype(np.int64)
        return cls(users=users, inputs=pad_left(dataset.items, starts, ends, max_len),
                   targets=targets, history_starts=starts, history_ends=ends,
                   target_starts=ends, target_ends=target_ends)

    @classmethod
    def from_histories(cls, items: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                       max_len: int) -> HoldoutData:
        """Whole histories `items[start:end]` without targets (what `recommend` ranks for);
        rows are numbered 0..n-1 in `users`."""
        return cls(users=np.arange(len(starts)), inputs=pad_left(items, starts, ends, max_len),
                   targets=None, history_starts=starts, history_ends=ends)

    @property
    def several_targets(self) -> bool:
        """Whether some user has more than one target (a temporal window)."""
        return (self.target_starts is not None and self.target_ends is not None
                and bool(((self.target_ends - self.target_starts) > 1).any()))

    def __len__(self) -> int:
        return len(self.users)

    def history_pairs(self, rows: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row-in-batch, item id) for every item in the histories of batch rows `rows`."""
        return _pairs(self.history_starts[rows], self.history_ends[rows], items)

    def target_pairs(self, rows: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row-in-batch, item id) for every target of batch rows `rows`."""
        if self.target_starts is None or self.target_ends is None:
            assert self.targets is not None
            return np.arange(len(rows)), self.targets[rows]
        return _pairs(self.target_starts[rows], self.target_ends[rows], items)


def _pairs(starts: np.ndarray, ends: np.ndarray, items: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    lengths = ends - starts
    batch_rows = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return batch_rows, items[np.repeat(starts, lengths) + offsets].astype(np.int64)
