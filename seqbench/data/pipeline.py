"""From raw interactions to the training-ready arrays: k-core, id mapping, chronological order.

Pure functions on in-memory data (no I/O), so each step can be checked against a brute-force
reference. The heavy lifting is numpy/polars on integer codes: 20M interactions take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from seqbench.data.raw import RawData


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


def build(raw: RawData, *, min_user: int, min_item: int, dedupe: bool) -> Prepared:
    """Filter, map ids and order a dataset as docs/datasets.md describes it."""
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
        user_codes, item_codes = user_codes[first], item_codes[first]

    kept, rounds = kcore(user_codes, item_codes, min_user, min_item)
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
    )
    if raw.attributes is not None:
        _attach_attributes(prepared, raw.attributes)
    return prepared


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
