"""From raw interactions to the training-ready arrays: k-core, id mapping, chronological order.

Pure functions on in-memory data (no I/O), so each step can be checked against a brute-force
reference. The heavy lifting is numpy/polars on integer codes: 20M interactions take seconds.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from seqbench.data.raw import RawData
from seqbench.errors import SeqbenchError

#: a temporal split's parts of a user's sequence, in `Prepared.split_lengths` columns
TRAIN, VALID, TEST = 0, 1, 2


@dataclass
class Prepared:
    """Interactions grouped by user (users 0..U-1), chronological, items 1..I (0 is padding).

    `items[offsets[u]:offsets[u + 1]]` is user u's sequence. `user_ids` / `item_ids` hold the
    original ids (index u, resp. item - 1). Attributes, when present, are CSR over item ids:
    `attr_values[attr_offsets[i]:attr_offsets[i + 1]]` are item i's attribute ids 1..A, with
    `attribute_names[a - 1]` the original attribute.
    """

    items: np.ndarray
    offsets: np.ndarray
    user_ids: pl.Series
    item_ids: pl.Series
    attr_offsets: np.ndarray | None = None
    attr_values: np.ndarray | None = None
    attribute_names: pl.Series | None = None
    stats: dict[str, int] = field(default_factory=dict)
    #: temporal split only: [U, 3] lengths of each user's train, validation and test parts
    #: (the sequence is their concatenation, in time order); None for leave-one-out
    split_lengths: np.ndarray | None = None
    split: dict[str, Any] = field(default_factory=lambda: {"split": "loo"})

    @property
    def num_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_items(self) -> int:
        return len(self.item_ids)


def dense_codes(values: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Codes 0..n-1 in sorted order of the distinct values, and those values.

    Non-negative integer ids with a modest range take an O(n) lookup table; anything else a
    sort-based dense rank.
    """
    if (
        values.dtype.is_integer()
        and values.len()
        and values.min() >= 0
        and values.max() < 4 * values.len() + 1_000_000
    ):
        raw = values.to_numpy()
        present = np.zeros(int(values.max()) + 1, dtype=bool)
        present[raw] = True
        lookup = np.cumsum(present, dtype=np.int64) - 1
        uniques = pl.Series(values.name, np.flatnonzero(present)).cast(values.dtype)
        return lookup[raw].astype(np.int32), uniques
    codes = (values.rank("dense") - 1).cast(pl.Int32).to_numpy()
    return codes, values.unique().sort()


def kcore(
    users: np.ndarray,
    items: np.ndarray,
    min_user: int,
    min_item: int,
) -> tuple[np.ndarray, int]:
    """Rows kept by iterative k-core filtering (to a fixed point), and the number of rounds.

    A round drops items with fewer than `min_item` interactions, then users with fewer than
    `min_user`; it repeats until a round drops nothing.
    """
    keep = np.ones(len(users), dtype=bool)
    n_users = int(users.max()) + 1 if len(users) else 0
    n_items = int(items.max()) + 1 if len(items) else 0
    rounds = 0
    while True:
        rounds += 1
        before = int(keep.sum())
        if min_item > 1:
            counts = np.bincount(items[keep], minlength=n_items)
            keep &= counts[items] >= min_item
        if min_user > 1:
            counts = np.bincount(users[keep], minlength=n_users)
            keep &= counts[users] >= min_user
        if int(keep.sum()) == before:
            return np.flatnonzero(keep), rounds


@dataclass(frozen=True)
class TemporalSplit:
    """The two cut-offs of a global temporal split: given as times (unix seconds) or as
    shares of all interactions (the latest `test_frac` are test, the `valid_frac` before
    them validation). `options` names the settings they came from, for errors."""

    valid_time: float | None = None
    test_time: float | None = None
    valid_frac: float | None = None
    test_frac: float | None = None

    @property
    def options(self) -> tuple[str, str]:
        return (("--valid-time", "--test-time") if self.valid_time is not None
                else ("--valid-frac", "--test-frac"))

    def cutoffs(self, ts: np.ndarray) -> tuple[float, float]:
        if self.valid_time is not None and self.test_time is not None:
            return self.valid_time, self.test_time
        assert self.valid_frac is not None and self.test_frac is not None
        ordered = np.sort(ts)
        n = len(ordered)
        test_at = min(n - 1, max(0, round(n * (1 - self.test_frac))))
        valid_at = min(n - 1, max(0, round(n * (1 - self.test_frac - self.valid_frac))))
        return float(ordered[valid_at]), float(ordered[test_at])


def build(raw: RawData, *, min_user: int, min_item: int, dedupe: bool,
          temporal: TemporalSplit | None = None) -> Prepared:
    """Filter, map ids and order a dataset as docs/datasets.md describes it (with `temporal`,
    for a global temporal split: k-core and item ids on the training part only)."""
    frame = raw.interactions
    rows_read = frame.height
    user_codes, user_values = dense_codes(frame["user"])
    item_codes, item_values = dense_codes(frame["item"])
    ts = frame["ts"].to_numpy()
    del frame

    # Chronological per user, ties in source order (a stable sort keeps the row order).
    order = (
        pl.DataFrame({"u": user_codes, "t": ts})
        .with_row_index("row")
        .sort(["u", "t"], maintain_order=True)["row"]
        .to_numpy()
    )
    user_codes, item_codes, ts = user_codes[order], item_codes[order], ts[order]
    del order

    duplicates = 0
    if dedupe:
        first = _first_occurrences(user_codes, item_codes, len(item_values))
        duplicates = len(user_codes) - len(first)
        user_codes, item_codes, ts = user_codes[first], item_codes[first], ts[first]

    split: dict[str, Any] = {"split": "loo"}
    if temporal is None:
        kept, rounds = kcore(user_codes, item_codes, min_user, min_item)
    else:
        kept, rounds, split = _temporal_rows(user_codes, item_codes, ts, min_user, min_item,
                                             temporal)
        ts = ts[kept]
    user_codes, item_codes = user_codes[kept], item_codes[kept]

    # Renumber survivors: users 0..U-1, items 1..I, both in sorted order of original id.
    user_alive = np.zeros(len(user_values), dtype=bool)
    user_alive[user_codes] = True
    item_alive = np.zeros(len(item_values), dtype=bool)
    item_alive[item_codes] = True
    user_lookup = np.cumsum(user_alive) - 1
    item_lookup = np.cumsum(item_alive)  # 1-based
    users = user_lookup[user_codes]
    items = item_lookup[item_codes].astype(np.int32)
    num_users = int(user_alive.sum())
    offsets = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=num_users), out=offsets[1:])

    split_lengths = None
    if temporal is not None:
        part = np.where(ts < split["valid_cutoff"], TRAIN,
                        np.where(ts < split["test_cutoff"], VALID, TEST))
        split_lengths = np.bincount(users.astype(np.int64) * 3 + part,
                                    minlength=3 * num_users).reshape(num_users, 3)
        split.update(_window_counts(split_lengths))
        _check_windows(split, temporal)
    prepared = Prepared(
        items=items,
        offsets=offsets,
        user_ids=user_values.filter(pl.Series(user_alive)),
        item_ids=item_values.filter(pl.Series(item_alive)),
        stats={
            "rows_read": rows_read,
            "duplicates_removed": duplicates,
            "rows_removed_by_filters": rows_read - duplicates - len(items),
            "kcore_rounds": rounds,
        },
        split_lengths=split_lengths,
        split=split,
    )
    if raw.attributes is not None:
        _attach_attributes(prepared, raw.attributes)
    return prepared


def _temporal_rows(users: np.ndarray, items: np.ndarray, ts: np.ndarray, min_user: int,
                   min_item: int, temporal: TemporalSplit
                   ) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Rows a temporal split keeps (in their order), the k-core rounds and the split's facts.

    Training is every interaction strictly before the validation cut-off; the k-core runs on
    those alone, and the items that survive it are the catalogue. A later interaction with
    an item outside it (cold: first seen at or after the cut-off, or filtered out) gets no id
    and is dropped, and counted. Users the k-core drops keep no training interactions; their
    later ones stay (they can be test users with validation-window inputs)."""
    valid_cutoff, test_cutoff = temporal.cutoffs(ts)
    train = np.flatnonzero(ts < valid_cutoff)
    if not len(train):
        raise SeqbenchError(f"{temporal.options[0]}: the split leaves no training data (no "
                            f"interaction before {_iso(valid_cutoff)}); move the cut-off later")
    kept_train, rounds = kcore(users[train], items[train], min_user, min_item)
    kept_train = train[kept_train]
    if not len(kept_train):
        raise SeqbenchError(f"{temporal.options[0]}: no training data is left after the k-core "
                            f"filter (min_user={min_user}, min_item={min_item}) on the "
                            f"{len(train):,} interactions before {_iso(valid_cutoff)}")
    warm = np.zeros(int(items.max()) + 1, dtype=bool)
    warm[items[kept_train]] = True
    window = np.flatnonzero(ts >= valid_cutoff)
    cold = window[~warm[items[window]]]
    kept = np.sort(np.concatenate([kept_train, window[warm[items[window]]]]))
    facts = {
        "split": "temporal",
        "valid_cutoff": valid_cutoff,
        "test_cutoff": test_cutoff,
        "valid_cutoff_utc": _iso(valid_cutoff),
        "test_cutoff_utc": _iso(test_cutoff),
        "train_interactions": len(kept_train),
        "cold_valid_targets": int((ts[cold] < test_cutoff).sum()),
        "cold_test_targets": int((ts[cold] >= test_cutoff).sum()),
        "cold_items": len(np.unique(items[cold])),
        "rows_before_valid_dropped_by_kcore": len(train) - len(kept_train),
    }
    return kept, rounds, facts


def _window_counts(lengths: np.ndarray) -> dict[str, int]:
    """Users and targets of each window (a window's user has an interaction before it)."""
    before_valid = lengths[:, TRAIN]
    before_test = lengths[:, TRAIN] + lengths[:, VALID]
    valid_users = (lengths[:, VALID] > 0) & (before_valid > 0)
    test_users = (lengths[:, TEST] > 0) & (before_test > 0)
    return {
        "train_users": int((before_valid > 0).sum()),
        "valid_users": int(valid_users.sum()),
        "valid_targets": int(lengths[valid_users, VALID].sum()),
        "test_users": int(test_users.sum()),
        "test_targets": int(lengths[test_users, TEST].sum()),
        "valid_targets_without_history": int(lengths[~valid_users, VALID].sum()),
        "test_targets_without_history": int(lengths[~test_users, TEST].sum()),
    }


def _check_windows(split: dict[str, Any], temporal: TemporalSplit) -> None:
    valid_option, test_option = temporal.options
    if not split["test_users"]:
        raise SeqbenchError(f"{test_option}: the split leaves no test users (none has an "
                            f"interaction at or after {split['test_cutoff_utc']} and one "
                            f"before); move the cut-off earlier")
    if not split["valid_users"]:
        raise SeqbenchError(f"{valid_option}: the split leaves no validation users (none has an "
                            f"interaction between {split['valid_cutoff_utc']} and "
                            f"{split['test_cutoff_utc']} and one before)")


def _iso(seconds: float) -> str:
    if not math.isfinite(seconds) or abs(seconds) > 1e11:
        return f"{seconds:g}"
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


def _first_occurrences(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Indices of the first (chronological) occurrence of each (user, item) pair, in order."""
    pair = users.astype(np.int64) * n_items + items
    _, first = np.unique(pair, return_index=True)
    return np.sort(first)


def _attach_attributes(prepared: Prepared, attributes: pl.DataFrame) -> None:
    """CSR item -> attribute ids over the surviving items; attributes numbered 1..A sorted."""
    catalogue = pl.DataFrame({"item": prepared.item_ids}).with_row_index("id", offset=1)
    pairs = attributes.join(catalogue, on="item", how="inner").unique(
        subset=["id", "attribute"], keep="first", maintain_order=True
    )
    codes, names = dense_codes(pairs["attribute"])
    ids = pairs["id"].to_numpy()
    order = np.argsort(ids, kind="stable")
    counts = np.bincount(ids, minlength=prepared.num_items + 1)
    prepared.attr_offsets = np.zeros(prepared.num_items + 2, dtype=np.int64)
    np.cumsum(counts, out=prepared.attr_offsets[1:])
    prepared.attr_values = (codes[order] + 1).astype(np.int32)
    prepared.attribute_names = names
