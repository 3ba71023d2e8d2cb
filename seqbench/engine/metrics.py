"""Ranking metrics as pure functions of ranks and top-K lists (docs/protocols.md).

Conventions: `ranks` holds each evaluated user's 1-based rank of their single target (ties
already broken by item id by the ranking code); `top` holds each user's ranked list as item ids,
best first, with 0 filling the slots of a list shorter than its width (e.g. 100 candidates
under `sampled-99` asked for K = 200). Every metric is averaged over evaluated users, except
Coverage, which is one global number.

A temporal window can hold several targets per user: HR, NDCG and MRR rank the first (the
next item after the cut-off, comparable with leave-one-out), while Recall, Precision and MAP
take `hits` ([users, K] booleans: is the list's item j one of the user's targets) and the
number of distinct targets per user.
"""

from __future__ import annotations

import numpy as np


def hit_rate(ranks: np.ndarray, k: int) -> float:
    """HR@K = 1[rank <= K]."""
    return float(np.mean(ranks <= k)) if len(ranks) else 0.0


def ndcg(ranks: np.ndarray, k: int) -> float:
    """NDCG@K = 1 / log2(rank + 1) if rank <= K else 0 (one relevant item, so IDCG = 1)."""
    if not len(ranks):
        return 0.0
    gains = np.where(ranks <= k, 1.0 / np.log2(ranks.astype(np.float64) + 1.0), 0.0)
    return float(gains.mean())


def mrr(ranks: np.ndarray, k: int | None = None) -> float:
    """MRR = 1 / rank, optionally cut at K (0 beyond it)."""
    if not len(ranks):
        return 0.0
    reciprocal = 1.0 / ranks.astype(np.float64)
    if k is not None:
        reciprocal = np.where(ranks <= k, reciprocal, 0.0)
    return float(reciprocal.mean())


def coverage(top: np.ndarray, k: int, train_items: np.ndarray) -> float:
    """Coverage@K = |(union over users of R_u@K) ∩ I_train| / |I_train| (RePlay's definition).

    `train_items` are the distinct items of the training interactions; recommended items
    outside it (never trained on) do not count.
    """
    train_items = np.unique(train_items)
    if not len(train_items):
        return 0.0
    recommended = np.unique(top[:, :k])
    recommended = recommended[recommended != 0]
    return float(np.isin(recommended, train_items).sum() / len(train_items))


def surprisal_weights(train_users_per_item: np.ndarray, train_users: int) -> np.ndarray:
    """w(j) = log2(N / u_j) / log2(N), with w = 1 for items no training user touched.

    `train_users_per_item[j]` is u_j, the number of distinct training users who interacted
    with item j (index 0, padding, is ignored); N = `train_users`.
    """
    counts = train_users_per_item.astype(np.float64)
    if train_users <= 1:
        return np.ones_like(counts)
    with np.errstate(divide="ignore"):
        weights = np.log2(train_users / counts) / np.log2(train_users)
    return np.where(counts > 0, weights, 1.0)


def surprisal(top: np.ndarray, k: int, weights: np.ndarray) -> float:
    """Surprisal@K(u) = sum over j in R_u@K of w(j) / K, averaged over users (RePlay)."""
    if not len(top):
        return 0.0
    lists = top[:, :k]
    per_user = np.where(lists != 0, weights[lists], 0.0).sum(axis=1) / k
    return float(per_user.mean())


def target_hits(top: np.ndarray, target_rows: np.ndarray, target_items: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(hits [users, K], distinct targets per user) for top lists and (row, item) targets."""
    width = int(max(top.max(initial=0), target_items.max(initial=0))) + 1
    targets = np.unique(target_rows.astype(np.int64) * width + target_items)
    keys = np.arange(len(top), dtype=np.int64)[:, None] * width + top
    hits = np.isin(keys, targets) & (top != 0)
    counts = np.bincount(targets // width, minlength=len(top))
    return hits, counts


def recall(hits: np.ndarray, counts: np.ndarray, k: int) -> float:
    """Recall@K = |R@K ∩ T| / |T|."""
    if not len(hits):
        return 0.0
    return float((hits[:, :k].sum(1) / np.maximum(counts, 1)).mean())


def precision(hits: np.ndarray, k: int) -> float:
    """Precision@K = |R@K ∩ T| / K (K, not the list's length: a short list is not excused)."""
    return float((hits[:, :k].sum(1) / k).mean()) if len(hits) else 0.0


def mean_average_precision(hits: np.ndarray, counts: np.ndarray, k: int) -> float:
    """MAP@K: the mean over users of AP@K = (1 / min(K, |T|)) x sum over j <= K of
    P@j x 1[r_j in T]."""
    if not len(hits):
        return 0.0
    cut = hits[:, :k].astype(np.float64)
    at_j = np.cumsum(cut, axis=1) / np.arange(1, cut.shape[1] + 1)
    return float(((at_j * cut).sum(1) / np.maximum(np.minimum(k, counts), 1)).mean())


def summarize(ranks: np.ndarray, top: np.ndarray, ks: list[int], *, train_items: np.ndarray,
              weights: np.ndarray) -> dict[str, float]:
    """All metrics for one protocol: HR, NDCG, Coverage, Surprisal at each K, and MRR."""
    result: dict[str, float] = {}
    for k in ks:
        result[f"HR@{k}"] = hit_rate(ranks, k)
        result[f"NDCG@{k}"] = ndcg(ranks, k)
        result[f"Coverage@{k}"] = coverage(top, k, train_items)
        result[f"Surprisal@{k}"] = surprisal(top, k, weights)
    result["MRR"] = mrr(ranks)
    return result


def summarize_targets(hits: np.ndarray, counts: np.ndarray, ks: list[int]
                      ) -> dict[str, float]:
    """Recall, Precision and MAP at each K, over every target of each user."""
    result: dict[str, float] = {}
    for k in ks:
        result[f"Recall@{k}"] = recall(hits, counts, k)
        result[f"Precision@{k}"] = precision(hits, k)
        result[f"MAP@{k}"] = mean_average_precision(hits, counts, k)
    return result
