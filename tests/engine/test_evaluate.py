"""Ranking under both protocols: exact ties, exclusion, blocks, sampled negatives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seqbench.engine.batches import HoldoutData, NextItemData, pad_left
from seqbench.engine.encoder import EncoderShape
from seqbench.engine.evaluate import (
    Embedded,
    Evaluator,
    MostPopular,
    TrainStats,
    embed,
    key_ids,
    key_scores,
    order_keys,
    rank_full,
    rank_sampled,
    sample_negatives,
)
from seqbench.engine.sasrec import SASRec
from tests.conftest import make_dataset

CPU = torch.device("cpu")


def fixed_scores(scores: np.ndarray) -> Embedded:
    """Scores given as a [users, items] matrix: user vector = one-hot row, table = scores.T."""
    table = torch.as_tensor(scores, dtype=torch.float32).T.contiguous()
    return Embedded(torch.eye(scores.shape[0]), table)


def brute_force(scores: np.ndarray, target: int, excluded: set[int], k: int
                ) -> tuple[int, list[int]]:
    """Rank and top-k by sorting (score desc, id asc) over all non-excluded items."""
    items = [j for j in range(1, len(scores) + 1) if j not in excluded or j == target]
    ordered = sorted(items, key=lambda j: (-scores[j - 1], j))
    return ordered.index(target) + 1, (ordered[:k] + [0] * k)[:k]


def test_order_keys_break_ties_by_lower_id() -> None:
    keys = order_keys(torch.tensor([0.5, 0.7, 0.5, 0.7, -1.0, -0.5]), torch.arange(1, 7))
    assert key_ids(keys.topk(6).values).tolist() == [2, 4, 1, 3, 6, 5]


def test_pad_left_keeps_the_most_recent_ids() -> None:
    items = np.array([1, 2, 3, 4, 5, 6])
    out = pad_left(items, np.array([0, 4]), np.array([4, 6]), 3)
    assert out.tolist() == [[2, 3, 4], [0, 5, 6]]


def test_next_item_data_shifts_targets_and_skips_holdout(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path, [[1, 2, 3, 4, 5], [6, 7]], num_items=7)
    data = NextItemData.build(ds, max_len=4)
    # user 0 trains on [1, 2, 3] (4, 5 held out): inputs 1,2 -> targets 2,3; user 1 on [6, 7]
    assert data.inputs.tolist() == [[0, 0, 1, 2], [0, 0, 0, 6]]
    assert data.targets.tolist() == [[0, 0, 2, 3], [0, 0, 0, 7]]
    assert NextItemData.build(ds, max_len=4, last_only=True).targets.tolist() == [
        [0, 0, 0, 3], [0, 0, 0, 7]]


def test_holdout_inputs_and_history(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path, [[1, 2, 3, 4, 5], [6, 7]], num_items=7)
    valid, test = (HoldoutData.build(ds, split, max_len=3) for split in ("valid", "test"))
    assert valid.users.tolist() == test.users.tolist() == [0]
    assert valid.inputs.tolist() == [[1, 2, 3]] and valid.targets.tolist() == [4]
    assert test.inputs.tolist() == [[2, 3, 4]] and test.targets.tolist() == [5]
    _rows, items = test.history_pairs(np.array([0]), ds.items)
    assert items.tolist() == [1, 2, 3, 4]  # the whole input, not only its last max_len ids


@pytest.mark.parametrize("block_size", [3, 4, 50])
@pytest.mark.parametrize("exclude_seen", [True, False])
def test_rank_full_matches_brute_force(tmp_path: Path, block_size: int, exclude_seen: bool
                                       ) -> None:
    rng = np.random.default_rng(0)
    num_items = 10
    sequences = [list(rng.choice(np.arange(1, 11), size=int(rng.integers(3, 7)))) for _ in range(9)]
    ds = make_dataset(tmp_path, sequences, num_items=num_items)
    data = HoldoutData.build(ds, "test", max_len=5)
    scores = rng.integers(0, 4, size=(len(data), num_items)).astype(np.float32)  # many ties
    k = 12  # larger than the catalogue
    ranking = rank_full(fixed_scores(scores), data, ds.items, k=k, device=CPU,
                        exclude_seen=exclude_seen, batch_size=4, block_size=block_size)
    for row in range(len(data)):
        history = set(ds.items[data.history_starts[row]:data.history_ends[row]].tolist())
        excluded = history if exclude_seen else set()
        rank, top = brute_force(scores[row], int(data.targets[row]), excluded, k)
        assert ranking.ranks[row] == rank
        assert ranking.top[row].tolist() == top


@pytest.mark.parametrize("block_size", [3, 50])
def test_rank_full_without_targets_excludes_the_whole_history(tmp_path: Path, block_size: int
                                                              ) -> None:
    """`recommend`'s histories: no target kept back, every history item excluded."""
    rng = np.random.default_rng(2)
    items = rng.integers(1, 11, size=20)
    starts, ends = np.array([0, 5, 12, 12]), np.array([5, 12, 20, 12])  # one empty history
    data = HoldoutData.from_histories(items, starts, ends, max_len=4)
    assert data.targets is None and data.inputs[3].tolist() == [0, 0, 0, 0]
    scores = rng.normal(size=(4, 10)).astype(np.float32)
    ranking = rank_full(fixed_scores(scores), data, items, k=10, device=CPU, batch_size=3,
                        block_size=block_size)
    assert ranking.scores is not None
    for row in range(4):
        seen = set(items[starts[row]:ends[row]].tolist())
        expected = sorted((j for j in range(1, 11) if j not in seen),
                          key=lambda j: (-scores[row, j - 1], j))
        listed = ranking.top[row][ranking.top[row] > 0].tolist()
        assert listed == expected
        assert ranking.scores[row][:len(listed)].tolist() == scores[row, np.array(listed) - 1
                                                                    ].tolist()
        assert np.isneginf(ranking.scores[row][len(listed):]).all()


def test_key_scores_invert_order_keys() -> None:
    scores = torch.tensor([0.0, -0.0, 1.5, -2.25, 3.4e38, -1e-30, float("inf")])
    keys = order_keys(scores, torch.arange(1, 8))
    assert key_scores(keys).tolist() == scores.tolist()


def test_a_listed_target_is_ranked_where_the_list_puts_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rank agrees with the top list even when the target's own score and its block
    score differ in the last bits (computed by different kernels): made to differ here."""
    import seqbench.engine.evaluate as evaluate

    exact = evaluate.order_keys

    def skewed(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return exact(scores + 1e-3 if scores.dim() == 1 else scores, ids)  # the target's own

    monkeypatch.setattr(evaluate, "order_keys", skewed)
    ds = make_dataset(tmp_path, [[1, 2, 3]], num_items=4)
    data = HoldoutData.build(ds, "test", max_len=3)
    table = torch.tensor([[0.1], [0.2], [0.5], [0.5001]])
    ranking = rank_full(Embedded(torch.tensor([[1.0]]), table), data, ds.items, k=4,
                        device=CPU, exclude_seen=False)
    assert ranking.top.tolist() == [[4, 3, 2, 1]]
    assert ranking.ranks.tolist() == [2]  # by the count alone it would be 1
    ranking = rank_full(Embedded(torch.tensor([[1.0]]), table), data, ds.items, k=1,
                        device=CPU, exclude_seen=False)
    assert ranking.top.tolist() == [[4]] and ranking.ranks.tolist() == [2]  # not listed: > k


def test_rank_sampled_against_fixed_negatives(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path, [[1, 2, 3]], num_items=6)
    data = HoldoutData.build(ds, "test", max_len=3)
    negatives = np.array([[4, 5, 6]])
    scores = np.array([[0.0, 0.0, 0.5, 0.9, 0.5, 0.1]], dtype=np.float32)  # target 3: 0.5
    ranking = rank_sampled(fixed_scores(scores), data, negatives, k=10, device=CPU)
    assert ranking.ranks.tolist() == [2]  # item 4 scores higher; item 5 ties, higher id
    assert ranking.top.tolist() == [[4, 3, 5, 6, 0, 0, 0, 0, 0, 0]]


def test_sampled_negatives_are_unseen_distinct_and_fixed_by_seed(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    sequences = [list(rng.choice(np.arange(1, 301), size=20, replace=False)) for _ in range(30)]
    ds = make_dataset(tmp_path, sequences, num_items=300)
    users = np.arange(30)
    first = sample_negatives(ds, users, seed=7)
    assert first.shape == (30, 99)
    for user in users:
        row = first[user]
        assert len(set(row.tolist())) == 99
        assert not set(row.tolist()) & set(ds.sequence(user).tolist())
        assert row.min() >= 1 and row.max() <= 300
    assert (sample_negatives(ds, users, seed=7) == first).all()
    assert (sample_negatives(ds, users, seed=8) != first).any()
    assert (sample_negatives(ds, users[5:], seed=7) == first[5:]).all()  # per user, not order


def test_train_stats_and_most_popular(tmp_path: Path) -> None:
    # training parts: [1, 2, 2], [2, 3] ; holdouts excluded from the statistics
    ds = make_dataset(tmp_path, [[1, 2, 2, 4, 4], [2, 3, 4, 4]], num_items=5)
    stats = TrainStats.from_dataset(ds)
    assert stats.counts.tolist() == [0, 1, 3, 1, 0, 0]
    assert stats.train_items.tolist() == [1, 2, 3]
    assert stats.weights[2] == pytest.approx(0.0)  # both training users had item 2
    assert stats.weights[1] == pytest.approx(1.0) and stats.weights[5] == 1.0
    results = Evaluator(ds, "test", max_len=5, ks=[1, 2], protocols=["full"], device=CPU,
                        exclude_seen=False, stats=stats)(MostPopular(stats.counts, CPU))
    # most-popular list: 2, then 1 and 3 tied at 1 (1 first by id); targets are item 4
    assert results["full"]["HR@2"] == 0.0
    assert results["full"]["Coverage@2"] == pytest.approx(2 / 3)


class CountingSASRec(SASRec):
    """SASRec that notes the [users, columns] shape of every batch it scores."""

    def __init__(self, shape: EncoderShape) -> None:
        super().__init__(shape)
        self.shapes: list[tuple[int, ...]] = []

    def user_vectors(self, inputs: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(inputs.shape))
        return super().user_vectors(inputs)


def test_both_protocols_share_one_pass_of_the_model(tmp_path: Path) -> None:
    """The model runs once per batch of users however many protocols are evaluated (it costs
    as much as the ranking on a CPU), on batches cut to their longest history; each protocol
    ranks exactly as it does alone, and the cut inputs give the states the padded ones do."""
    rng = np.random.default_rng(3)
    sequences = [list(rng.choice(np.arange(1, 201), size=int(n), replace=False))
                 for n in [12, 3, 4, 9, 3, 5, 12, 4, 3, 6]]
    ds = make_dataset(tmp_path, sequences, num_items=200)
    torch.manual_seed(0)
    model = CountingSASRec(EncoderShape(num_items=200, max_len=12, dim=16, layers=2, heads=2))
    model.eval()

    def evaluate(protocols: list[str]) -> dict[str, dict[str, float]]:
        return Evaluator(ds, "test", max_len=12, ks=[10], protocols=protocols, device=CPU,
                         batch_size=4)(model)

    both = evaluate(["full", "sampled-99"])
    # test inputs are the sequences minus their last item, by length: 2 2 2 3 3 4 5 8 11 11
    assert model.shapes == [(4, 3), (4, 8), (2, 11)]
    assert both == {**evaluate(["full"]), **evaluate(["sampled-99"])}
    data = HoldoutData.build(ds, "test", max_len=12)
    padded = model.user_vectors(torch.from_numpy(data.inputs))
    cut = embed(model, data, device=CPU, batch_size=4).users
    assert torch.allclose(cut, padded, atol=1e-5)
