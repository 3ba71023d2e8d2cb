"""Each metric on hand-computed examples (docs/protocols.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqbench.engine import metrics
from seqbench.engine.metrics import (
    mean_average_precision,
    precision,
    recall,
    summarize_targets,
    target_hits,
)

RANKS = np.array([1, 3, 11, 2])


def test_hit_rate() -> None:
    assert metrics.hit_rate(RANKS, 1) == 0.25
    assert metrics.hit_rate(RANKS, 3) == 0.75
    assert metrics.hit_rate(RANKS, 10) == 0.75
    assert metrics.hit_rate(RANKS, 11) == 1.0


def test_ndcg() -> None:
    expected = (1 + 1 / math.log2(4) + 0 + 1 / math.log2(3)) / 4
    assert metrics.ndcg(RANKS, 10) == pytest.approx(expected)
    assert metrics.ndcg(RANKS, 1) == pytest.approx(0.25)


def test_mrr_with_and_without_cutoff() -> None:
    assert metrics.mrr(RANKS) == pytest.approx((1 + 1 / 3 + 1 / 11 + 1 / 2) / 4)
    assert metrics.mrr(RANKS, 10) == pytest.approx((1 + 1 / 3 + 1 / 2) / 4)


def test_k_larger_than_the_candidate_list() -> None:
    ranks = np.array([1, 57, 100])  # sampled-99: at most 100 candidates
    assert metrics.hit_rate(ranks, 200) == 1.0
    assert metrics.ndcg(ranks, 200) == pytest.approx(
        np.mean([1.0, 1 / math.log2(58), 1 / math.log2(101)]))


def test_coverage_counts_only_training_items_and_ignores_empty_slots() -> None:
    top = np.array([[1, 2, 0], [2, 5, 0]])
    train_items = np.array([1, 2, 3, 4])
    assert metrics.coverage(top, 2, train_items) == 0.5  # {1, 2}; 5 is not a training item
    assert metrics.coverage(top, 1, train_items) == 0.5  # {1, 2} again
    assert metrics.coverage(np.array([[3, 0]]), 2, train_items) == 0.25


def test_surprisal_weights_and_cold_items() -> None:
    users_per_item = np.array([0, 4, 1, 2, 0, 0])  # index 0 is padding; items 4, 5 are cold
    weights = metrics.surprisal_weights(users_per_item, train_users=4)
    assert weights[1] == pytest.approx(0.0)  # everyone had it: no surprise
    assert weights[2] == pytest.approx(1.0)  # one user of four: log2(4)/log2(4)
    assert weights[3] == pytest.approx(0.5)
    assert weights[4] == weights[5] == 1.0  # cold items count as maximally surprising
    top = np.array([[1, 3], [2, 5]])
    assert metrics.surprisal(top, 2, weights) == pytest.approx(((0 + 0.5) / 2 + (1 + 1) / 2) / 2)


def test_surprisal_divides_by_k_even_for_short_lists() -> None:
    weights = np.array([0.0, 1.0, 1.0])
    assert metrics.surprisal(np.array([[1, 0, 0]]), 3, weights) == pytest.approx(1 / 3)


def test_summarize_names_every_metric() -> None:
    result = metrics.summarize(RANKS, np.ones((4, 10), dtype=np.int64), [5, 10],
                               train_items=np.array([1]), weights=np.array([0.0, 0.5]))
    assert set(result) == {"HR@5", "NDCG@5", "Coverage@5", "Surprisal@5", "HR@10", "NDCG@10",
                           "Coverage@10", "Surprisal@10", "MRR"}
    assert result["Coverage@10"] == 1.0 and result["Surprisal@5"] == pytest.approx(0.5)


def test_recall_precision_and_map_on_several_targets() -> None:
    top = np.array([[3, 1, 5, 0],   # user 0: targets {1, 5, 9} (9 is never listed)
                    [2, 4, 6, 7]])  # user 1: target {7}, listed 4th
    rows, items = np.array([0, 0, 0, 1, 1]), np.array([1, 5, 9, 7, 7])  # 7 twice: one target
    hits, counts = target_hits(top, rows, items)
    assert hits.tolist() == [[False, True, True, False], [False, False, False, True]]
    assert counts.tolist() == [3, 1]
    assert recall(hits, counts, 3) == pytest.approx((2 / 3 + 0) / 2)
    assert precision(hits, 3) == pytest.approx((2 / 3 + 0) / 2)
    # AP@3, user 0: (1 / min(3, 3)) * (P@2 + P@3) = (1/2 + 2/3) / 3; user 1: 0
    assert mean_average_precision(hits, counts, 3) == pytest.approx((1 / 2 + 2 / 3) / 3 / 2)
    assert recall(hits, counts, 4) == pytest.approx((2 / 3 + 1) / 2)
    assert precision(hits, 4) == pytest.approx((2 / 4 + 1 / 4) / 2)
    # user 1: (1 / min(4, 1)) * P@4 = 1/4
    assert mean_average_precision(hits, counts, 4) == pytest.approx(((1 / 2 + 2 / 3) / 3
                                                                     + 1 / 4) / 2)


def test_several_target_metrics_with_k_beyond_the_list() -> None:
    top = np.array([[4, 2]])  # two candidates only, K = 5
    hits, counts = target_hits(top, np.array([0, 0]), np.array([2, 8]))
    assert recall(hits, counts, 5) == pytest.approx(1 / 2)
    assert precision(hits, 5) == pytest.approx(1 / 5)  # K, not the list's length
    assert mean_average_precision(hits, counts, 5) == pytest.approx((1 / 2) / 2)
    assert set(summarize_targets(hits, counts, [1, 5])) == {
        "Recall@1", "Precision@1", "MAP@1", "Recall@5", "Precision@5", "MAP@5"}
