"""Batched, vectorised evaluation under a named protocol (docs/protocols.md).

`full` ranks the target against the whole catalogue. Scores are computed one block of items at
a time, so a batch never holds more than [batch, block] scores, even for 1M items. The user's
items from the input sequence are excluded (except the targets), unless asked not to.

The sampled protocols (`sampled-N`, `sampled-N-popular`, `sampled-file`) rank the target
against fixed negatives per user (`engine/negatives.py`); `sampled-99` is the S3Rec paper's.
Full and sampled numbers differ by an order of magnitude and are never mixed.

Ties are broken by item id (lower id first) exactly: each score is turned into a 64-bit key,
the float's order-preserving bit pattern in the high half and the inverted id in the low half,
so one integer comparison orders by (score desc, id asc) and `topk` returns the exact list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from seqbench.data.dataset import Dataset
from seqbench.engine.batches import HoldoutData
from seqbench.engine.distributed import SINGLE, Shard, sum_across
from seqbench.engine.metrics import (
    summarize,
    summarize_targets,
    surprisal_weights,
    target_hits,
)
from seqbench.engine.negatives import negatives_for, uniform_negatives
from seqbench.vocabulary import parse_protocol

SAMPLED_NEGATIVES = 99
_ID_SPACE = (1 << 31) - 1
_NONE = torch.iinfo(torch.int64).min  # the key of an excluded item: ranks below everything


class Scorer(Protocol):
    """What evaluation needs from a model: a vector per user and one per item."""

    def user_vectors(self, inputs: torch.Tensor) -> torch.Tensor: ...

    def item_table(self) -> torch.Tensor: ...


@dataclass
class TrainStats:
    """What Coverage and Surprisal need from the training interactions."""

    train_items: np.ndarray  # distinct item ids seen in training
    weights: np.ndarray  # surprisal weight per item id (index 0 unused)
    counts: np.ndarray  # training interactions per item id (most-popular baseline)

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> TrainStats:
        starts = dataset.offsets[:-1]
        lengths = dataset.train_lengths
        rows = np.repeat(np.arange(dataset.num_users), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        items = dataset.items[np.repeat(starts, lengths) + offsets].astype(np.int64)
        size = dataset.num_items + 1
        counts = np.bincount(items, minlength=size)
        pairs = np.unique(rows.astype(np.int64) * size + items)
        users_per_item = np.bincount(pairs % size, minlength=size)
        train_users = int((lengths > 0).sum())
        return cls(train_items=np.flatnonzero(counts[1:]) + 1,
                   weights=surprisal_weights(users_per_item, train_users), counts=counts)


class MostPopular:
    """The most-popular baseline as a `Scorer`: every user gets the training counts."""

    def __init__(self, counts: np.ndarray, device: torch.device) -> None:
        self._table = torch.as_tensor(counts[1:], dtype=torch.float32, device=device)[:, None]

    def user_vectors(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.ones(inputs.shape[0], 1, device=self._table.device)

    def item_table(self) -> torch.Tensor:
        return self._table


def order_keys(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """int64 keys ordering by score (descending) then id (ascending) in one comparison."""
    bits = scores.float().contiguous().view(torch.int32)
    keys = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).to(torch.int64)  # monotone in the float's value
    keys <<= 32  # in place, and the flip above in 32 bits: this runs on every score (CPU cost)
    keys |= _ID_SPACE - ids
    return keys


def key_scores(keys: torch.Tensor) -> torch.Tensor:
    """The float32 scores back from keys (the flip in `order_keys` is its own inverse);
    -inf where the key marks an excluded (missing) item."""
    bits = (keys >> 32).to(torch.int32)
    scores = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).view(torch.float32)
    return torch.where(keys == _NONE, torch.full_like(scores, -torch.inf), scores)


def key_ids(keys: torch.Tensor) -> torch.Tensor:
    """Item ids back from keys; 0 where the key marks an excluded (missing) item."""
    ids = _ID_SPACE - (keys & 0xFFFFFFFF)
    return torch.where(keys == _NONE, torch.zeros_like(ids), ids)


def sample_negatives(dataset: Dataset, users: np.ndarray, seed: int,
                     n: int = SAMPLED_NEGATIVES) -> np.ndarray:
    """[len(users), n] distinct item ids each user never interacted with, fixed by (seed, user)
    (`seqbench.engine.negatives.uniform_negatives`, kept under its earlier name)."""
    return uniform_negatives(dataset, users, seed, n)


@dataclass
class Ranking:
    """Per-user rank of the target and the top-K list (item ids, 0 = empty slot) with its
    scores (float32, as ranked; -inf in empty slots). `ranks` is 0 when there is no target."""

    ranks: np.ndarray
    top: np.ndarray
    scores: np.ndarray | None = None


@dataclass
class Embedded:
    """A model's vectors for one split: a row per holdout user (zeros for rows another process
    ranks) and the item table. Computed once per evaluation, shared by the protocols."""

    users: torch.Tensor
    table: torch.Tensor


@torch.no_grad()
def embed(scorer: Scorer, data: HoldoutData, *, device: torch.device, batch_size: int = 512,
          shard: Shard = SINGLE) -> Embedded:
    """Run the model once over the holdout inputs of this process's batches.

    Users go through in order of history length, each batch cut to its longest history: most
    of a left-padded [users, max_len] matrix is padding (short histories are the common case in
    recommendation data), and the encoder gives the same states without the padded columns."""
    table = scorer.item_table().float()
    users = torch.zeros(len(data), table.shape[1], device=device)
    starts = shard.batch_starts(len(data), batch_size)
    rows = np.concatenate([np.arange(s, min(s + batch_size, len(data))) for s in starts]
                          or [np.zeros(0, dtype=np.int64)])
    lengths = (data.inputs[rows] != 0).sum(1)
    order = np.argsort(lengths, kind="stable")
    rows, lengths = rows[order], lengths[order]
    for lo in range(0, len(rows), batch_size):
        part = rows[lo:lo + batch_size]
        width = max(1, int(lengths[lo:lo + batch_size].max()))  # sorted: the batch's longest
        inputs = torch.from_numpy(data.inputs[part, -width:]).to(device)
        users[torch.from_numpy(part).to(device)] = scorer.user_vectors(inputs).float()
    return Embedded(users, table)


@torch.no_grad()
def rank_full(embedded: Embedded, data: HoldoutData, dataset_items: np.ndarray, *, k: int,
              device: torch.device, exclude_seen: bool = True, batch_size: int = 512,
              block_size: int = 32_768, shard: Shard = SINGLE,
              on_batch: Callable[[int], None] | None = None) -> Ranking:
    """Exact rank of each target among all items, and the top-k lists, block by block.
    Under `shard`, only this rank's batches are filled (zeros elsewhere).

    Without targets (`data.targets` None: `recommend`'s histories) only the top-k lists are
    made, with every history item excluded. A target is never excluded, even when it is also
    in the history (with several targets per user, as in a temporal window: none of them).
    A target inside the top-k list has its position there as its rank, so the metrics and
    the list always agree (its own score and the block score it is compared with are
    computed differently and can differ in the last bit)."""
    if data.targets is None:
        return _top_only(embedded, data, dataset_items, k=k, device=device,
                         exclude_seen=exclude_seen, batch_size=batch_size,
                         block_size=block_size, on_batch=on_batch)
    table = embedded.table
    num_items = table.shape[0]
    several = data.several_targets
    ranks = np.zeros(len(data), dtype=np.int64)
    top = np.zeros((len(data), k), dtype=np.int64)
    top_scores = np.full((len(data), k), -np.inf, dtype=np.float32)
    for start in shard.batch_starts(len(data), batch_size):
        rows = np.arange(start, min(start + batch_size, len(data)))
        users = embedded.users[start:start + len(rows)]
        targets = torch.from_numpy(data.targets[rows]).to(device)
        target_keys = order_keys((users * table[targets - 1]).sum(-1), targets)
        if exclude_seen:
            hist_rows, hist_items = (torch.from_numpy(a).to(device)
                                     for a in data.history_pairs(rows, dataset_items))
            if several:  # no target is excluded, even one the user had before
                size = num_items + 1
                target_rows, target_items = (torch.from_numpy(a).to(device)
                                             for a in data.target_pairs(rows, dataset_items))
                keep = ~torch.isin(hist_rows * size + hist_items,
                                   target_rows * size + target_items)
            else:
                keep = hist_items != targets[hist_rows]
            hist_rows, hist_items = hist_rows[keep], hist_items[keep]
        greater = torch.zeros(len(rows), dtype=torch.int64, device=device)
        best = torch.full((len(rows), k), _NONE, dtype=torch.int64, device=device)
        for lo in range(0, num_items, block_size):
            hi = min(lo + block_size, num_items)
            ids = torch.arange(lo + 1, hi + 1, device=device)
            keys = order_keys(users @ table[lo:hi].T, ids)
            if exclude_seen:
                sel = (hist_items > lo) & (hist_items <= hi)
                keys[hist_rows[sel], hist_items[sel] - lo - 1] = _NONE
            above = keys > target_keys[:, None]
            # The target never outranks itself, whatever rounding its block score got.
            inside = (targets > lo) & (targets <= hi)
            above[inside.nonzero().squeeze(1), targets[inside] - lo - 1] = False
            greater += above.sum(1)
            block_best = keys.topk(min(k, hi - lo), dim=1).values
            best = torch.cat([best, block_best], dim=1).topk(k, dim=1).values
        best_ids = key_ids(best)
        listed = best_ids == targets[:, None]
        position = listed.int().argmax(1) + 1
        ranks[rows] = torch.where(listed.any(1), position,
                                  torch.clamp(greater + 1, min=k + 1)).cpu().numpy()
        top[rows] = best_ids.cpu().numpy()
        top_scores[rows] = key_scores(best).cpu().numpy()
        if on_batch is not None:
            on_batch(len(rows))
    return Ranking(ranks, top, top_scores)


def _top_only(embedded: Embedded, data: HoldoutData, dataset_items: np.ndarray, *, k: int,
              device: torch.device, exclude_seen: bool, batch_size: int, block_size: int,
              on_batch: Callable[[int], None] | None) -> Ranking:
    """Top-k lists without targets, the same lists as ordering every item by its key, faster.

    Keys are built only for a block's candidates: the items scoring at least the block's k-th
    largest score (`topk` on floats finds it but breaks ties arbitrarily; every item tied
    with it is a candidate, so the ties are still broken by id). Building a key for each of
    the users x items scores was most of `recommend`'s time on a CPU."""
    table = embedded.table
    num_items = table.shape[0]
    top = np.zeros((len(data), k), dtype=np.int64)
    top_scores = np.full((len(data), k), -np.inf, dtype=np.float32)
    for start in range(0, len(data), batch_size):
        rows = np.arange(start, min(start + batch_size, len(data)))
        users = embedded.users[start:start + len(rows)]
        if exclude_seen:
            hist_rows, hist_items = (torch.from_numpy(a).to(device)
                                     for a in data.history_pairs(rows, dataset_items))
        best = torch.full((len(rows), k), _NONE, dtype=torch.int64, device=device)
        for lo in range(0, num_items, block_size):
            hi = min(lo + block_size, num_items)
            scores = users @ table[lo:hi].T
            if exclude_seen:
                sel = (hist_items > lo) & (hist_items <= hi)
                scores[hist_rows[sel], hist_items[sel] - lo - 1] = -torch.inf
            kth = scores.topk(min(k, hi - lo), dim=1).values[:, -1:]
            cand_rows, cand_cols = (scores >= kth).nonzero(as_tuple=True)
            values = scores[cand_rows, cand_cols]
            keys = order_keys(values, cand_cols + lo + 1)
            keys[values == -torch.inf] = _NONE  # excluded items (a model's scores are finite)
            counts = torch.bincount(cand_rows, minlength=len(rows))
            firsts = torch.cumsum(counts, 0) - counts
            slots = torch.arange(len(cand_rows), device=device) - firsts[cand_rows]
            width = int(counts.max()) if len(cand_rows) else 1
            block = torch.full((len(rows), width), _NONE, dtype=torch.int64, device=device)
            block[cand_rows, slots] = keys
            best = torch.cat([best, block], dim=1).topk(k, dim=1).values
        top[rows] = key_ids(best).cpu().numpy()
        top_scores[rows] = key_scores(best).cpu().numpy()
        if on_batch is not None:
            on_batch(len(rows))
    return Ranking(np.zeros(len(data), dtype=np.int64), top, top_scores)


@torch.no_grad()
def rank_sampled(embedded: Embedded, data: HoldoutData, negatives: np.ndarray, *, k: int,
                 device: torch.device, batch_size: int = 512, shard: Shard = SINGLE) -> Ranking:
    """Rank of each target among itself and its fixed negatives; top-k of those candidates."""
    if data.targets is None:
        raise ValueError("sampled ranking needs targets")
    table = embedded.table
    ranks = np.zeros(len(data), dtype=np.int64)
    width = negatives.shape[1] + 1
    top = np.zeros((len(data), k), dtype=np.int64)
    for start in shard.batch_starts(len(data), batch_size):
        rows = np.arange(start, min(start + batch_size, len(data)))
        users = embedded.users[start:start + len(rows)]
        candidates = torch.from_numpy(np.concatenate(
            [data.targets[rows, None], negatives[rows]], axis=1)).to(device)
        keys = order_keys((users[:, None, :] * table[candidates - 1]).sum(-1), candidates)
        ranks[rows] = ((keys[:, 1:] > keys[:, :1]).sum(1) + 1).cpu().numpy()
        best = keys.topk(min(k, width), dim=1).values
        top[rows, : best.shape[1]] = key_ids(best).cpu().numpy()
    return Ranking(ranks, top)


class Evaluator:
    """Evaluates a `Scorer` on one split under the requested protocols.

    Holds what does not change between epochs: the holdout matrices, the training statistics
    for Coverage/Surprisal and the fixed sampled negatives.
    """

    def __init__(self, dataset: Dataset, split: str, *, max_len: int, ks: list[int],
                 protocols: list[str], device: torch.device, exclude_seen: bool = True,
                 sampled_seed: int = 0, batch_size: int = 512, block_size: int = 32_768,
                 stats: TrainStats | None = None, shard: Shard = SINGLE,
                 negatives_file: str | None = None) -> None:
        parsed = [parse_protocol(p) for p in protocols]  # ValueError on an unknown name
        self.dataset = dataset
        self.data = HoldoutData.build(dataset, split, max_len)
        self.ks = sorted(set(ks))
        self.protocols = protocols
        self.device = device
        self.exclude_seen = exclude_seen
        self.batch_size = batch_size
        self.block_size = block_size
        self.stats = stats or TrainStats.from_dataset(dataset)
        self.shard = shard  # ranks split the batches, then sum: metrics as one process
        #: the fixed negatives of each sampled protocol, [users, N] item ids
        self.negatives = {
            p.name: negatives_for(p, dataset, self.data.users, self.data.targets,
                                  seed=sampled_seed, counts=self.stats.counts,
                                  negatives_file=negatives_file)
            for p in parsed if p.kind != "full"}

    def __call__(self, scorer: Scorer) -> dict[str, dict[str, float]]:
        """{protocol: {metric: value}} for every requested protocol."""
        results: dict[str, dict[str, float]] = {}
        k = max(self.ks)
        embedded = embed(scorer, self.data, device=self.device, batch_size=self.batch_size,
                         shard=self.shard)
        for protocol in self.protocols:
            ranking = self._rank(protocol, embedded, k)
            ranking = Ranking(*sum_across(self.shard, ranking.ranks, ranking.top))
            results[protocol] = summarize(ranking.ranks, ranking.top, self.ks,
                                          train_items=self.stats.train_items,
                                          weights=self.stats.weights)
            if protocol == "full" and self.dataset.split == "temporal":
                hits, counts = target_hits(ranking.top, *self.data.target_pairs(
                    np.arange(len(self.data)), self.dataset.items))
                results[protocol].update(summarize_targets(hits, counts, self.ks))
        return results

    def _rank(self, protocol: str, embedded: Embedded, k: int) -> Ranking:
        if protocol == "full":
            return rank_full(embedded, self.data, self.dataset.items, k=k, device=self.device,
                             exclude_seen=self.exclude_seen, batch_size=self.batch_size,
                             block_size=self.block_size, shard=self.shard)
        return rank_sampled(embedded, self.data, self.negatives[protocol], k=k,
                            device=self.device, batch_size=self.batch_size, shard=self.shard)
