"""Ranking metrics as pure functions of ranks and top-K lists (docs/protocols.md).

Conventions: `ranks` holds each evaluated user's 1-based rank of their single target (ties
already broken by item id by the ranking code); `top` holds each user's ranked list as item ids,
best first, with 0 filling the slots of a list shorter than its width (e.g. 100 candidates
under `sampled-99` asked for K = 200). Every metric is averaged over evaluated users, except
Coverage, which is one global number.
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
