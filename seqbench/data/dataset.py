"""A prepared dataset as the engine sees it: user sequences, their split, attributes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from seqbench.errors import SeqbenchError


@dataclass
class Dataset:
    """Arrays of one cache entry (see `seqbench.data.cache` for the files).

    Leave-one-out (docs/datasets.md), for a user with sequence s of length n >= 3: train =
    s[:-2], validation target s[-2] with input s[:-2], test target s[-1] with input s[:-1].
    Users with fewer than 3 interactions train on everything and have no validation or test
    target. Temporal (`split_lengths`): s is the user's train, validation and test parts in
    time order; a window's targets are its part, its input everything before it, and its
    users those with both (`holdout`).
    """

    path: Path
    meta: dict[str, Any]
    items: np.ndarray
    offsets: np.ndarray
    attr_offsets: np.ndarray | None = None
    attr_values: np.ndarray | None = None
    split_lengths: np.ndarray | None = None

    @classmethod
    def load(cls, path: Path) -> Dataset:
        try:
            meta = json.loads((path / "meta.json").read_text())
            attrs = (path / "attr_offsets.npy").exists()
            split = path / "split.npy"
            return cls(
                path=path,
                meta=meta,
                items=np.load(path / "sequences.npy"),
                offsets=np.load(path / "offsets.npy"),
                attr_offsets=np.load(path / "attr_offsets.npy") if attrs else None,
                attr_values=np.load(path / "attr_values.npy") if attrs else None,
                split_lengths=np.load(split) if split.exists() else None,
            )
        except (OSError, ValueError) as exc:
            raise SeqbenchError(
                f"{path}: not a readable seqbench dataset cache ({exc}); "
                "delete it and run prep again"
            ) from None

    @property
    def name(self) -> str:
        return str(self.meta["dataset"])

    @property
    def num_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_items(self) -> int:
        """Items are 1..num_items; 0 is padding."""
        return int(self.meta["stats"]["items"])

    @property
    def num_attributes(self) -> int:
        """Attributes are 1..num_attributes (0 if the dataset has none)."""
        return int(self.meta["stats"].get("attributes", 0))

    @property
    def has_attributes(self) -> bool:
        return self.attr_offsets is not None

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    @property
    def split(self) -> str:
        """"loo" or "temporal": named next to every metric of this data."""
        return "loo" if self.split_lengths is None else "temporal"

    @cached_property
    def has_holdout(self) -> np.ndarray:
        """Leave-one-out: users with a validation and a test target (at least 3 interactions)."""
        return self.lengths >= 3

    @cached_property
    def train_lengths(self) -> np.ndarray:
        """Each user's training prefix: all a model may learn from."""
        if self.split_lengths is not None:
            return self.split_lengths[:, 0].astype(np.int64)
        return np.where(self.has_holdout, self.lengths - 2, self.lengths)

    def holdout(self, window: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(users, input starts, input ends = target starts, target ends) of "valid" or
        "test", as offsets into `items`: the input is everything before the window, the
        targets the window's items (leave-one-out: the one held-out item)."""
        if window not in ("valid", "test"):
            raise ValueError(f"unknown split {window!r}")
        starts = self.offsets[:-1]
        if self.split_lengths is None:
            users = np.flatnonzero(self.has_holdout)
            ends = self.offsets[1:][users] - (2 if window == "valid" else 1)
            return users, starts[users], ends, ends + 1
        lengths = self.split_lengths
        before = lengths[:, 0] if window == "valid" else lengths[:, 0] + lengths[:, 1]
        inside = lengths[:, 1] if window == "valid" else lengths[:, 2]
        users = np.flatnonzero((before > 0) & (inside > 0))
        ends = starts[users] + before[users]
        return users, starts[users], ends, ends + inside[users]

    @cached_property
    def valid_targets(self) -> np.ndarray:
        """Leave-one-out: each user's validation item (0 without one)."""
        return np.where(self.has_holdout, self.items[np.maximum(self.offsets[1:] - 2, 0)], 0)

    @cached_property
    def test_targets(self) -> np.ndarray:
        """Leave-one-out: each user's test item (0 without one)."""
        return np.where(self.has_holdout, self.items[np.maximum(self.offsets[1:] - 1, 0)], 0)

    def train_sequence(self, user: int) -> np.ndarray:
        start = self.offsets[user]
        return self.items[start : start + self.train_lengths[user]]

    def item_attributes(self, item: int) -> np.ndarray:
        if self.attr_offsets is None or self.attr_values is None:
            return np.empty(0, dtype=np.int32)
        return self.attr_values[self.attr_offsets[item] : self.attr_offsets[item + 1]]

    def item_table(self) -> pl.DataFrame:
        """Item id -> original id, and interaction count."""
        return pl.read_parquet(self.path / "items.parquet")

    def user_table(self) -> pl.DataFrame:
        return pl.read_parquet(self.path / "users.parquet")

    def attribute_table(self) -> pl.DataFrame | None:
        path = self.path / "attributes.parquet"
        return pl.read_parquet(path) if path.exists() else None
