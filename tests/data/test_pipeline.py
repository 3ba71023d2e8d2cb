"""k-core, ordering, id mapping, split and attributes, checked against simple references."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seqbench.data.cache import write_arrays
from seqbench.data.dataset import Dataset
from seqbench.data.pipeline import build, kcore
from seqbench.data.raw import RawData
from seqbench.fsutil import atomic_write_json


def brute_force_kcore(
    pairs: list[tuple[int, int]], min_user: int, min_item: int
) -> list[tuple[int, int]]:
    """Remove offending users/items one sweep at a time until nothing changes."""
    while True:
        users = Counter(u for u, _ in pairs)
        items = Counter(i for _, i in pairs)
        kept = [(u, i) for u, i in pairs if users[u] >= min_user and items[i] >= min_item]
        if len(kept) == len(pairs):
            return kept
        pairs = kept


@pytest.mark.parametrize("seed", range(8))
def test_kcore_reaches_the_brute_force_fixed_point(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    users = rng.integers(0, 60, n)
    items = (rng.zipf(1.6, n) % 80).astype(np.int64)
    min_user, min_item = int(rng.integers(2, 6)), int(rng.integers(2, 6))
    kept, rounds = kcore(users, items, min_user, min_item)
    got = sorted(zip(users[kept].tolist(), items[kept].tolist(), strict=True))
    expected = sorted(
        brute_force_kcore(
            list(zip(users.tolist(), items.tolist(), strict=True)), min_user, min_item
        )
    )
    assert got == expected
    # a fixed point: every survivor meets both thresholds
    if got:
        assert min(Counter(u for u, _ in got).values()) >= min_user
        assert min(Counter(i for _, i in got).values()) >= min_item
    assert rounds >= 1


def raw(
    rows: list[tuple[object, object, int]], attributes: list[tuple[object, object]] | None = None
) -> RawData:
    frame = pl.DataFrame(rows, schema=["user", "item", "ts"], orient="row")
    attrs = (
        pl.DataFrame(attributes, schema=["item", "attribute"], orient="row")
        if attributes is not None
        else None
    )
    return RawData(frame, attrs)


def test_orders_by_time_and_keeps_source_order_for_ties() -> None:
    data = raw([("u", "c", 30), ("u", "a", 10), ("u", "z", 20), ("u", "b", 20), ("v", "a", 5)])
    prepared = build(data, min_user=0, min_item=0, dedupe=False)
    names = prepared.item_ids.to_list()
    sequence = [names[i - 1] for i in prepared.items[prepared.offsets[0] : prepared.offsets[1]]]
    assert sequence == ["a", "z", "b", "c"]  # z before b: same ts, z came first in the file


def test_ids_follow_sorted_original_ids_and_zero_is_padding() -> None:
    data = raw([(20, 300, 1), (10, 100, 1), (10, 300, 2), (20, 100, 2)])
    prepared = build(data, min_user=0, min_item=0, dedupe=False)
    assert prepared.user_ids.to_list() == [10, 20]
    assert prepared.item_ids.to_list() == [100, 300]
    assert prepared.items.min() == 1 and prepared.items.max() == 2
    assert prepared.offsets.tolist() == [0, 2, 4]
    assert prepared.items.tolist() == [1, 2, 2, 1]


def test_dedupe_keeps_the_first_occurrence_in_time() -> None:
    data = raw([("u", "a", 3), ("u", "b", 1), ("u", "a", 2), ("u", "c", 4)])
    kept = build(data, min_user=0, min_item=0, dedupe=True)
    assert kept.items.tolist() == [2, 1, 3]  # b(1), a(2), c(4); the later a is dropped
    assert kept.stats["duplicates_removed"] == 1
    assert build(data, min_user=0, min_item=0, dedupe=False).items.tolist() == [2, 1, 1, 3]


def test_attributes_follow_item_ids_and_drop_filtered_items() -> None:
    data = raw(
        [("u", "x", 1), ("u", "y", 2), ("v", "x", 1), ("v", "y", 2), ("w", "q", 1)],
        attributes=[("y", "brand-b"), ("x", "cat"), ("y", "cat"), ("q", "only-q")],
    )
    prepared = build(data, min_user=2, min_item=2, dedupe=False)
    assert prepared.item_ids.to_list() == ["x", "y"]
    assert prepared.attribute_names is not None
    assert prepared.attribute_names.to_list() == ["brand-b", "cat"]  # only-q went with q
    assert prepared.attr_offsets is not None and prepared.attr_values is not None
    per_item = [
        sorted(
            prepared.attr_values[prepared.attr_offsets[i] : prepared.attr_offsets[i + 1]].tolist()
        )
        for i in range(prepared.num_items + 1)
    ]
    assert per_item == [[], [2], [1, 2]]  # padding, x: cat, y: brand-b + cat


def test_leave_one_out_split(tmp_path: Path) -> None:
    data = raw(
        [
            ("a", 1, 1),
            ("a", 2, 2),
            ("a", 3, 3),
            ("a", 4, 4),
            ("b", 5, 1),
            ("b", 6, 2),
            ("c", 7, 1),
            ("c", 8, 2),
            ("c", 9, 3),
        ]
    )
    prepared = build(data, min_user=0, min_item=0, dedupe=False)
    write_arrays(prepared, tmp_path)
    atomic_write_json(tmp_path / "meta.json", {"dataset": "t", "stats": {"items": 9}})
    ds = Dataset.load(tmp_path)
    assert ds.train_sequence(0).tolist() == [1, 2]
    assert ds.valid_targets.tolist() == [3, 0, 8]
    assert ds.test_targets.tolist() == [4, 0, 9]
    assert ds.train_sequence(1).tolist() == [5, 6]  # fewer than 3: all train, no targets
    assert ds.train_sequence(2).tolist() == [7]
    assert ds.has_holdout.tolist() == [True, False, True]
