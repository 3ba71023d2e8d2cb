"""A prepared dataset as the engine sees it: user sequences, the leave-one-out split, attributes."""

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

    Split (docs/datasets.md), for a user with sequence s of length n >= 3: train = s[:-2],
    validation target s[-2] with input s[:-2], test target s[-1] with input s[:-1]. Users with
    fewer than 3 interactions train on everything and have no validation or test target (0).
    """

    path: Path
    meta: dict[str, Any]
    items: np.ndarray
    offsets: np.ndarray
    attr_offsets: np.ndarray | None = None
    attr_values: np.ndarray | None = None

    @classmethod
    def load(cls, path: Path) -> Dataset:
        try:
            meta = json.loads((path / "meta.json").read_text())
            attrs = (path / "attr_offsets.npy").exists()
            return cls(
                path=path,
                meta=meta,
                items=np.load(path / "sequences.npy"),
                offsets=np.load(path / "offsets.npy"),
                attr_offsets=np.load(path / "attr_offsets.npy") if attrs else None,
                attr_values=np.load(path / "attr_values.npy") if attrs else None,
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

    @cached_property
    def has_holdout(self) -> np.ndarray:
        """Users with a validation and a test target (at least 3 interactions)."""
        return self.lengths >= 3

    @cached_property
    def train_lengths(self) -> np.ndarray:
        return np.where(self.has_holdout, self.lengths - 2, self.lengths)

    @cached_property
    def valid_targets(self) -> np.ndarray:
        return np.where(self.has_holdout, self.items[np.maximum(self.offsets[1:] - 2, 0)], 0)

    @cached_property
    def test_targets(self) -> np.ndarray:
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
