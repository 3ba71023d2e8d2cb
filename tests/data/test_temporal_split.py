"""The global temporal split: nothing at or after the validation cut-off is trained on, the
catalogue is what training saw, windows hold what docs/datasets.md says, bad cut-offs fail."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seqbench.data.dataset import Dataset
from seqbench.data.pipeline import TRAIN, VALID, TemporalSplit, build
from seqbench.data.raw import RawData
from seqbench.engine.batches import HoldoutData
from tests.conftest import Cli, cache_entries, write

VALID_AT, TEST_AT = 700, 850


def generated(seed: int = 0, users: int = 60, items: int = 50) -> RawData:
    """Interactions with known, distinct times; no user rates an item twice."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(users):
        chosen = rng.choice(items, size=int(rng.integers(3, 25)), replace=False)
        times = rng.choice(1000, size=len(chosen), replace=False)
        rows += [(f"u{user}", f"i{item}", int(t)) for item, t in zip(chosen, times, strict=True)]
    for late in range(8):  # items released after the validation cut-off: cold
        for user in rng.choice(users, size=3, replace=False):
            rows.append((f"u{user}", f"late{late}", int(rng.integers(VALID_AT, 1000)) * 1000))
    frame = pl.DataFrame(rows, schema={"user": pl.String, "item": pl.String, "ts": pl.Int64},
                         orient="row")
    return RawData(frame.sample(fraction=1.0, shuffle=True, seed=seed))  # source order random


@pytest.mark.parametrize("min_count", [1, 3])
def test_no_training_interaction_is_at_or_after_the_validation_cutoff(min_count: int) -> None:
    raw = generated()
    when = {(u, i): t for u, i, t in raw.interactions.iter_rows()}
    prepared = build(raw, min_user=min_count, min_item=min_count, dedupe=False,
                     temporal=TemporalSplit(valid_time=VALID_AT, test_time=TEST_AT))
    assert prepared.split_lengths is not None
    users, items = prepared.user_ids.to_list(), prepared.item_ids.to_list()
    trained_items: set[int] = set()
    for row, user in enumerate(users):
        sequence = prepared.items[prepared.offsets[row]:prepared.offsets[row + 1]]
        times = [when[(user, items[i - 1])] for i in sequence]
        assert times == sorted(times)
        n_train, n_valid, _ = prepared.split_lengths[row]
        assert all(t < VALID_AT for t in times[:n_train])
        assert all(VALID_AT <= t < TEST_AT for t in times[n_train:n_train + n_valid])
        assert all(t >= TEST_AT for t in times[n_train + n_valid:])
        trained_items.update(sequence[:n_train].tolist())
    # every item id was learnt in training; nothing first seen later has one
    assert trained_items == set(range(1, prepared.num_items + 1))
    split = prepared.split
    assert split["train_interactions"] == int(prepared.split_lengths[:, TRAIN].sum())
    warm = {items[i - 1] for i in trained_items}
    window = [(u, i, t) for (u, i), t in when.items() if t >= VALID_AT]
    cold = [(u, i, t) for u, i, t in window if i not in warm]
    assert split["cold_valid_targets"] == sum(t < TEST_AT for _, _, t in cold)
    assert split["cold_test_targets"] == sum(t >= TEST_AT for _, _, t in cold)
    if min_count == 1:  # no k-core: training is exactly every interaction before the cut-off
        assert split["train_interactions"] == sum(t < VALID_AT for t in when.values())
        assert split["cold_valid_targets"] + split["cold_test_targets"] > 0  # the test bites


def test_cutoffs_from_fractions_are_quantiles_of_the_times() -> None:
    raw = generated(seed=1)
    ts = np.sort(raw.interactions["ts"].to_numpy())
    prepared = build(raw, min_user=1, min_item=1, dedupe=False,
                     temporal=TemporalSplit(valid_frac=0.2, test_frac=0.1))
    n = len(ts)
    assert prepared.split["test_cutoff"] == ts[round(n * 0.9)]
    assert prepared.split["valid_cutoff"] == ts[round(n * 0.7)]
    assert (ts >= prepared.split["test_cutoff"]).mean() == pytest.approx(0.1, abs=0.01)


CSV = """user,item,ts
A,a,1
A,b,2
A,c,5
A,d,7
A,e,9
B,x,6
B,y,9
C,c,1
C,d,2
C,e,3
C,x,4
C,y,4
C,z,9
D,q,6
"""


def test_windows_inputs_and_targets(cli: Cli, tmp_path: Path) -> None:
    """Validation input is what came before its window, test input everything before the
    test cut-off; a user without an earlier interaction has no window; z and q are cold."""
    source = write(tmp_path / "events.csv", CSV)
    result = cli("prep", "--dataset", "generic", "--source", str(source), "--time-col", "ts",
                 "--min-user", "1", "--min-item", "1", "--split", "temporal",
                 "--valid-time", "5", "--test-time", "8", "--data-dir", str(tmp_path / "c"),
                 "--json")
    assert result.code == 0, result.err
    meta = json.loads(result.out)
    split = meta["split"]
    assert (split["valid_cutoff"], split["test_cutoff"]) == (5, 8)
    assert split["train_interactions"] == 7  # A: a b; C: c d e x y (z and q come later)
    assert (split["valid_users"], split["valid_targets"]) == (1, 2)  # A: c d (B has no past)
    assert (split["test_users"], split["test_targets"]) == (2, 2)  # A: e; B: y after x
    assert (split["cold_valid_targets"], split["cold_test_targets"]) == (1, 1)  # q; z
    dataset = Dataset.load(next(iter(cache_entries(tmp_path / "c"))))
    assert dataset.split == "temporal" and dataset.num_items == 7  # a b c d e x y
    name = dict(enumerate(dataset.item_table()["original"].to_list(), 1))
    users = dataset.user_table()["original"].to_list()

    def window(kind: str) -> dict[str, tuple[list[str], list[str]]]:
        data = HoldoutData.build(dataset, kind, max_len=10)
        assert data.target_starts is not None and data.target_ends is not None
        return {users[u]: ([name[i] for i in dataset.items[s:e]],
                           [name[i] for i in dataset.items[ts:te]])
                for u, s, e, ts, te in zip(data.users, data.history_starts, data.history_ends,
                                           data.target_starts, data.target_ends, strict=True)}

    assert window("valid") == {"A": (["a", "b"], ["c", "d"])}
    assert window("test") == {"A": (["a", "b", "c", "d"], ["e"]), "B": (["x"], ["y"])}
    assert dataset.train_lengths.tolist() == [2, 0, 5]  # A, B, C: B never trained
    assert "D" not in users  # only a cold interaction


@pytest.mark.parametrize(("args", "fragment"), [
    (["--valid-time", "9", "--test-time", "5"], "--test-time (5) is before --valid-time (9)"),
    (["--valid-frac", "0.6", "--test-frac", "0.4"], "they must sum to less than 1"),
    (["--valid-frac", "0", "--test-frac", "0.1"], "--valid-frac must be in (0, 1)"),
    (["--valid-time", "0", "--test-time", "8"], "--valid-time: the split leaves no training "
     "data"),
    (["--valid-time", "5", "--test-time", "100"], "--test-time: the split leaves no test users"),
    (["--valid-frac", "0.1"], "--test-frac is needed with --valid-frac"),
    (["--valid-time", "5", "--test-frac", "0.1"], "exclude each other"),
])
def test_bad_cutoffs_are_one_line_errors_and_cache_nothing(cli: Cli, tmp_path: Path,
                                                           args: list[str], fragment: str) -> None:
    source = write(tmp_path / "events.csv", CSV)
    result = cli("prep", "--dataset", "generic", "--source", str(source), "--time-col", "ts",
                 "--min-user", "1", "--min-item", "1", "--split", "temporal", *args,
                 "--data-dir", str(tmp_path / "c"))
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.err
    assert cache_entries(tmp_path / "c") == []


def test_temporal_needs_real_times(cli: Cli, tmp_path: Path) -> None:
    source = write(tmp_path / "Beauty.txt", "1 1 2 3\n2 2 3 4\n")
    result = cli("prep", "--dataset", "s3rec", "--source", str(source), "--split", "temporal",
                 "--data-dir", str(tmp_path / "c"))
    assert result.code != 0
    assert "has no interaction times" in result.err and "use --split loo" in result.err
    assert cache_entries(tmp_path / "c") == []
    for flag in ("--valid-frac", "--test-time"):
        result = cli("prep", "--dataset", "synthetic", flag, "0.1")
        assert f"{flag} applies to --split temporal only" in result.err


def test_the_split_is_part_of_the_cache_key(cli: Cli, tmp_path: Path) -> None:
    source = write(tmp_path / "events.csv", CSV)
    base = ["prep", "--dataset", "generic", "--source", str(source), "--time-col", "ts",
            "--min-user", "1", "--min-item", "1", "--data-dir", str(tmp_path / "c"), "--json"]
    keys = {json.loads(cli(*base, *extra).out)["key"] for extra in (
        [], ["--split", "temporal", "--valid-time", "5", "--test-time", "8"],
        ["--split", "temporal", "--valid-time", "5", "--test-time", "9"])}
    assert len(keys) == 3 and len(cache_entries(tmp_path / "c")) == 3


def test_loo_data_is_unchanged(tmp_path: Path) -> None:
    """Leave-one-out prepares exactly as before: no split file, the same arrays."""
    raw = generated(seed=2)
    plain = build(raw, min_user=3, min_item=3, dedupe=False)
    assert plain.split_lengths is None and plain.split == {"split": "loo"}
    assert VALID == 1  # the parts' order is part of the cache format


def test_evaluation_keeps_every_target_and_scores_all_of_them(cli: Cli, tmp_path: Path) -> None:
    """A's test window repeats an item of its history (a): it stays a candidate, the other
    history items are excluded, and Recall/Precision/MAP count both of A's targets."""
    import torch

    from seqbench.engine.evaluate import Embedded, Evaluator, MostPopular, rank_full

    source = write(tmp_path / "events.csv", CSV.replace("A,e,9", "A,a,9\nA,e,9"))
    assert cli("prep", "--dataset", "generic", "--source", str(source), "--time-col", "ts",
               "--min-user", "1", "--min-item", "1", "--keep-duplicates", "--split",
               "temporal", "--valid-time", "5", "--test-time", "8",
               "--data-dir", str(tmp_path / "c")).code == 0
    dataset = Dataset.load(next(iter(cache_entries(tmp_path / "c"))))
    ids = {name: i for i, name in enumerate(dataset.item_table()["original"].to_list(), 1)}
    data = HoldoutData.build(dataset, "test", max_len=10)
    row = dataset.user_table()["original"].to_list().index("A")
    a_row = int(np.flatnonzero(data.users == row)[0])
    scores = np.zeros((len(data), dataset.num_items), dtype=np.float32)
    for rank, name in enumerate(["a", "b", "c", "d", "e", "x", "y"]):  # a best, then b, ...
        scores[:, ids[name] - 1] = 10 - rank
    embedded = Embedded(torch.eye(len(data)), torch.as_tensor(scores).T.contiguous())
    ranking = rank_full(embedded, data, dataset.items, k=7, device=torch.device("cpu"))
    names = {i: name for name, i in ids.items()}
    listed = [names[i] for i in ranking.top[a_row] if i]
    assert listed == ["a", "e", "x", "y"]  # b, c, d (history, not targets) excluded
    assert ranking.ranks[a_row] == 1  # the first target, a, is not excluded either

    evaluator = Evaluator(dataset, "test", max_len=10, ks=[1, 7], protocols=["full"],
                          device=torch.device("cpu"))
    metrics = evaluator(MostPopular(evaluator.stats.counts, torch.device("cpu")))["full"]
    assert metrics["Recall@7"] == 1.0  # K = the catalogue: every target is listed
    assert metrics["Precision@7"] == pytest.approx((2 / 7 + 1 / 7) / 2)  # A: a, e; B: y
    assert metrics["HR@7"] == 1.0 and set(metrics) >= {"MAP@1", "Recall@1", "NDCG@7"}
