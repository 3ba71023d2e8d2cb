"""The fixed negatives of the sampled protocols: uniform, by popularity, and from a file."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from seqbench.config import load_config
from seqbench.data.cache import write_arrays
from seqbench.data.dataset import Dataset
from seqbench.data.pipeline import Prepared
from seqbench.engine.batches import HoldoutData
from seqbench.engine.evaluate import (
    Embedded,
    Evaluator,
    MostPopular,
    TrainStats,
    rank_sampled,
    sample_negatives,
)
from seqbench.engine.negatives import (
    file_negatives,
    negatives_for,
    popular_negatives,
    uniform_negatives,
)
from seqbench.errors import SeqbenchError
from seqbench.fsutil import atomic_write_json
from seqbench.recipes import bench, prepare_context
from seqbench.vocabulary import parse_protocol
from tests.conftest import make_dataset, write

CPU = torch.device("cpu")


def pinned_dataset(tmp_path: Path) -> Dataset:
    """6 users of 3..40 distinct items out of 150, written out so the draws below are pinned."""
    sequences = [[(7 * u + 13 * j) % 150 + 1 for j in range(n)]
                 for u, n in enumerate([3, 10, 25, 40, 7, 3])]
    return make_dataset(tmp_path / "pinned", sequences, num_items=150)


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(array.astype("<i8").tobytes()).hexdigest()


def test_sampled_99_draws_exactly_what_seqbench_0_1_drew(tmp_path: Path) -> None:
    """Values computed with the 0.1 `sample_negatives` before it moved: `sampled-99` numbers
    stay comparable with every recorded run."""
    ds = pinned_dataset(tmp_path)
    users = np.arange(6)
    zero = uniform_negatives(ds, users, 0, 99)
    assert zero[0, :4].tolist() == [128, 96, 77, 41] and zero[0, -2:].tolist() == [111, 113]
    assert zero[3, :4].tolist() == [76, 135, 144, 130] and zero[3, -2:].tolist() == [65, 117]
    assert zero.sum(1).tolist() == [7848, 7395, 7207, 7777, 7679, 7418]
    assert digest(zero) == "a3cf9375cceebee7564d08516630efbf1d3dcb0a340f6e303623bae4c0a800ce"
    three = uniform_negatives(ds, users, 3, 99)
    assert three[5, :4].tolist() == [4, 21, 9, 133]
    assert digest(three) == "88f4f2f87b2639b1e1d6fc84c88a8c5f35fd9155031ff683cbf908eab3c144f4"
    assert digest(uniform_negatives(ds, np.array([3, 1]), 3, 99)) == (
        "cd3224027f450e5f21a3d7ae71c9b987760d909e82f99cb6f3f8152ec5a7ca52")
    assert (sample_negatives(ds, users, seed=0) == zero).all()  # the earlier name
    protocol = parse_protocol("sampled-99")
    assert (negatives_for(protocol, ds, users, None, seed=3) == three).all()


@pytest.mark.parametrize("n", [1, 5, 99, 110])
def test_uniform_negatives_are_unseen_distinct_and_fixed_by_seed(tmp_path: Path, n: int) -> None:
    ds = pinned_dataset(tmp_path)
    users = np.arange(6)
    first = uniform_negatives(ds, users, 7, n)
    assert first.shape == (6, n) and first.dtype == np.int64
    for user in users:
        row = first[user].tolist()
        assert len(set(row)) == n and min(row) >= 1 and max(row) <= 150
        assert not set(row) & set(ds.sequence(user).tolist())
    assert (uniform_negatives(ds, users, 7, n) == first).all()
    assert (uniform_negatives(ds, users[2:], 7, n) == first[2:]).all()  # per user, not order
    if n > 1:
        assert (uniform_negatives(ds, users, 8, n) != first).any()


def test_too_many_negatives_is_one_line_naming_the_protocol_and_the_limit(
        tmp_path: Path) -> None:
    ds = pinned_dataset(tmp_path)  # the longest user has 40 distinct items of 150: 110 left
    with pytest.raises(SeqbenchError, match=r"^--protocol sampled-111 needs 111 negatives .* "
                                            r"only 110 items \(at most sampled-110 here\)$"):
        uniform_negatives(ds, np.arange(6), 0, 111)
    uniform_negatives(ds, np.array([0, 1, 2]), 0, 125)  # only the evaluated users count
    counts = np.zeros(151, dtype=np.int64)
    counts[1:51] = 1  # 50 items with a training interaction; user 3 saw some of them
    seen = len({i for i in ds.sequence(3).tolist() if i <= 50})
    with pytest.raises(SeqbenchError, match=rf"^--protocol sampled-60-popular needs 60 .* only "
                                            rf"{50 - seen} items with a training interaction "
                                            rf"\(at most sampled-{50 - seen}-popular here\)$"):
        popular_negatives(ds, np.arange(6), 0, 60, counts)


def popular_dataset(tmp_path: Path, users: int = 600) -> tuple[Dataset, np.ndarray]:
    """Short random histories over 220 items; counts: 1..100 common (100), 101..200 rare (1),
    201..220 never trained on (0)."""
    rng = np.random.default_rng(11)
    sequences = [list(rng.choice(np.arange(1, 221), size=4, replace=False)) for _ in range(users)]
    counts = np.zeros(221, dtype=np.int64)
    counts[1:101], counts[101:201] = 100, 1
    return make_dataset(tmp_path / "popular", sequences, num_items=220), counts


def test_popular_negatives_are_unseen_distinct_trained_on_and_fixed_by_seed(
        tmp_path: Path) -> None:
    ds, counts = popular_dataset(tmp_path, users=50)
    users = np.arange(50)
    first = popular_negatives(ds, users, 5, 30, counts)
    assert first.shape == (50, 30) and first.dtype == np.int64
    for user in users:
        row = first[user].tolist()
        assert len(set(row)) == 30
        assert not set(row) & set(ds.sequence(user).tolist())
        assert (counts[row] > 0).all()  # never an item without a training interaction
    assert (popular_negatives(ds, users, 5, 30, counts) == first).all()
    assert (popular_negatives(ds, users[7:], 5, 30, counts) == first[7:]).all()
    assert (popular_negatives(ds, users, 6, 30, counts) != first).any()
    assert (uniform_negatives(ds, users, 5, 30) != first).any()  # a stream of its own
    # every candidate drawn: 200 trained-on items minus the user's, none of the zero-count ones
    everything = popular_negatives(ds, users[:1], 5, 200 - int((ds.sequence(0) <= 200).sum()),
                                   counts)
    assert set(everything[0].tolist()) == set(range(1, 201)) - set(ds.sequence(0).tolist())


def test_popular_items_are_drawn_far_more_often(tmp_path: Path) -> None:
    """With weights 100 and 1, a draw is a common item about 99% of the time: per item, common
    ones must come up at least 10 times as often as rare ones (expected: about 100 times, and
    at least 20 times in all but a vanishing share of seeds)."""
    ds, counts = popular_dataset(tmp_path)
    negatives = popular_negatives(ds, np.arange(ds.num_users), 0, 10, counts)
    drawn = np.bincount(negatives.ravel(), minlength=221)
    common, rare = drawn[1:101].mean(), drawn[101:201].mean()
    assert drawn[201:].sum() == 0
    assert common > 10 * rare and common > 50, (common, rare)
    # the uniform protocol over the same users shows no such preference
    uniform = np.bincount(uniform_negatives(ds, np.arange(ds.num_users), 0, 10).ravel(),
                          minlength=221)
    assert 0.5 < uniform[1:101].mean() / uniform[101:201].mean() < 2


def named_dataset(directory: Path) -> Dataset:
    """Users u-a, u-b, u-c and items i10..i17 (ids 1..8), so original and internal ids differ:
    u-a 1 2 3 4, u-b 2 5 6, u-c 7 8 1 2 5 (test targets 4, 6, 5)."""
    sequences = [[1, 2, 3, 4], [2, 5, 6], [7, 8, 1, 2, 5]]
    items = np.array([i for s in sequences for i in s], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    prepared = Prepared(items=items, offsets=offsets,
                        user_ids=pl.Series("user", ["u-a", "u-b", "u-c"]),
                        item_ids=pl.Series("item", [f"i{10 + j}" for j in range(8)]))
    directory.mkdir(parents=True)
    write_arrays(prepared, directory)
    atomic_write_json(directory / "meta.json", {
        "dataset": "fixture", "key": "fixture",
        "stats": {"items": 8, "users": 3, "interactions": len(items)}})
    return Dataset.load(directory)


def test_a_negatives_file_is_ranked_exactly_as_listed(tmp_path: Path) -> None:
    ds = named_dataset(tmp_path / "named")
    path = write(tmp_path / "negs.txt", "u-c i17 i12\nu-a  i15\ti16\n\nu-b i10 i17\n")
    data = HoldoutData.build(ds, "test", max_len=5)
    negatives = file_negatives(path, ds, data.users, data.targets)
    assert negatives.tolist() == [[6, 7], [1, 8], [8, 3]]  # users in dataset order
    protocol = parse_protocol("sampled-file")
    assert (negatives_for(protocol, ds, data.users, data.targets, seed=0,
                          negatives_file=str(path)) == negatives).all()
    # fixed scores: item j scores j / 10 for every user
    embedded = Embedded(torch.ones(3, 1), torch.arange(1, 9, dtype=torch.float32)[:, None] / 10)
    ranking = rank_sampled(embedded, data, negatives, k=3, device=CPU)
    # u-a: target 4 vs 6, 7 -> 3; u-b: 6 vs 1, 8 -> 2; u-c: 5 vs 8, 3 -> 2
    assert ranking.ranks.tolist() == [3, 2, 2]
    assert ranking.top.tolist() == [[7, 6, 4], [8, 6, 1], [8, 5, 3]]
    # through the evaluator, with the most-popular scores (training counts: 1 2 2 ... 7 8)
    stats = TrainStats.from_dataset(ds)
    evaluator = Evaluator(ds, "test", max_len=5, ks=[1, 3], protocols=["sampled-file", "full"],
                          device=CPU, negatives_file=str(path), stats=stats)
    assert evaluator.negatives["sampled-file"].tolist() == negatives.tolist()
    results = evaluator(MostPopular(stats.counts, CPU))["sampled-file"]
    # training parts u-a [1, 2], u-b [2], u-c [7, 8, 1]: counts 1:2 2:2 7:1 8:1, others 0
    # u-a: 4 (0) vs 6 (0), 7 (1) -> 2 (7 above; 6 ties, higher id); u-b: 6 (0) vs 1 (2),
    # 8 (1) -> 3; u-c: 5 (0) vs 8 (1), 3 (0) -> 3 (8 above; 3 ties, lower id)
    assert results["MRR"] == pytest.approx((1 / 2 + 1 / 3 + 1 / 3) / 3)
    assert results["HR@1"] == 0.0 and results["HR@3"] == 1.0
    valid = Evaluator(ds, "valid", max_len=5, ks=[3], protocols=["sampled-file"], device=CPU,
                      negatives_file=str(path))
    assert valid.negatives["sampled-file"].tolist() == negatives.tolist()  # both splits


@pytest.mark.parametrize(("text", "message"), [
    ("u-a i15 i16\nu-z i10 i18\n", r":2: user 'u-z' is not in the dataset"),
    ("u-a i15 i16\nu-b i10 i99\n", r":2: item 'i99' is not in the dataset"),
    ("u-a i15 i16\nu-b i15 i13\n", r":2: item 'i15' is user 'u-b''s target"),
    ("u-a i15 i16\n\nu-b i10 i17 i11\n", r":3: 3 negatives, but the lines before list 2"),
    ("u-a i15 i16\nu-a i10 i17\n", r":2: user 'u-a' has a second line"),
    ("u-a i15 i16\nu-b\n", r":2: user 'u-b' lists no negatives"),
    ("u-a i15 i16\nu-c i17 i12\n", r": no line for user 'u-b', who is evaluated"),
    ("", r": the negatives file is empty"),
    ("\n  \n", r": the negatives file is empty"),
])
def test_negatives_file_problems_are_one_line_naming_file_and_line(
        tmp_path: Path, text: str, message: str) -> None:
    ds = named_dataset(tmp_path / "named")
    path = write(tmp_path / "negs.txt", text)
    data = HoldoutData.build(ds, "test", max_len=5)
    with pytest.raises(SeqbenchError, match=rf"^{re.escape(str(path))}{message}") as caught:
        file_negatives(path, ds, data.users, data.targets)
    assert "\n" not in str(caught.value)


def test_a_missing_negatives_file_is_one_line(tmp_path: Path) -> None:
    ds = named_dataset(tmp_path / "named")
    data = HoldoutData.build(ds, "test", max_len=5)
    with pytest.raises(SeqbenchError, match=r"nowhere\.txt: cannot read the negatives file"):
        file_negatives(tmp_path / "nowhere.txt", ds, data.users, data.targets)


def test_bench_records_every_sampled_protocol(tmp_path: Path) -> None:
    """A short bench under full, sampled-20, sampled-20-popular and a file holding the
    sampled-20 negatives: every protocol recorded, and the file ranks as sampled-20 does."""
    tables = {
        "data": {"dataset": "synthetic", "items": 200, "users": 400, "mean_len": 8.0,
                 "data_dir": str(tmp_path / "cache")},
        "model": {"dim": 16, "layers": 1, "heads": 1, "max_len": 10},
        "train": {"epochs": 1, "batch_size": 128, "runs_dir": str(tmp_path / "runs")},
        "eval": {"k": [10], "protocol": ["full", "sampled-20", "sampled-20-popular"]},
    }
    dataset = prepare_context(load_config(None, tables), evaluate=False).dataset
    users = np.flatnonzero(dataset.has_holdout)
    drawn = uniform_negatives(dataset, users, 0, 20)
    user_names = dataset.user_table()["original"].cast(pl.String).to_list()
    item_names = dataset.item_table()["original"].cast(pl.String).to_list()
    path = tmp_path / "negs.txt"
    path.write_text("".join(" ".join([user_names[u], *(item_names[i - 1] for i in row)]) + "\n"
                            for u, row in zip(users, drawn, strict=True)))
    tables["eval"] = {"k": [10], "negatives_file": str(path),
                      "protocol": ["full", "sampled-20", "sampled-20-popular", "sampled-file"]}
    [summary] = bench(prepare_context(load_config(None, tables)))
    assert list(summary["test"]) == ["full", "sampled-20", "sampled-20-popular", "sampled-file"]
    assert list(summary["valid"]) == list(summary["test"])
    assert list(summary["baseline"]["test"]) == list(summary["test"])
    for split in ("valid", "test"):
        assert summary[split]["sampled-file"] == summary[split]["sampled-20"]
    test = summary["test"]
    assert test["full"]["HR@10"] < test["sampled-20"]["HR@10"]
    popular = summary["baseline"]["test"]
    # most-popular scores are the training counts: popularity negatives are harder for it
    assert popular["sampled-20-popular"]["HR@10"] < popular["sampled-20"]["HR@10"]
