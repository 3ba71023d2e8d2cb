"""The dataset cache: one directory per (source checksums, preset, filters, reader options).

Layout of an entry `<cache>/prepared/<dataset>-<key>/`:
  meta.json            statistics, options, source checksums, timings (written last)
  sequences.npy        int32, all interactions grouped by user, chronological, items 1..I
  offsets.npy          int64 [U+1], user u's sequence is sequences[offsets[u]:offsets[u+1]]
  users.parquet        id (0..U-1) -> original id
  items.parquet        id (1..I) -> original id, interactions
  attr_offsets.npy     int64 [I+2], CSR over item ids (only with attributes)
  attr_values.npy      int32 attribute ids 1..A
  attributes.parquet   id (1..A) -> original attribute
  split.npy            int64 [U, 3], temporal split only: each user's train, validation and
                       test part lengths (the sequence is their concatenation in time order)
An entry is built in a staging directory and renamed into place, so it is either whole or absent.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from seqbench.data.pipeline import Prepared

CACHE_FORMAT = 1


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_key(material: dict[str, Any]) -> str:
    """A stable digest of everything that determines the prepared data."""
    blob = json.dumps({"format": CACHE_FORMAT, **material}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def write_arrays(prepared: Prepared, directory: Path) -> None:
    """Write the arrays and tables; `meta.json` is written last and marks a whole entry."""
    np.save(directory / "sequences.npy", prepared.items)
    np.save(directory / "offsets.npy", prepared.offsets)
    if prepared.split_lengths is not None:
        np.save(directory / "split.npy", prepared.split_lengths.astype(np.int64))
    pl.DataFrame(
        {"id": np.arange(prepared.num_users, dtype=np.int32), "original": prepared.user_ids}
    ).write_parquet(directory / "users.parquet")
    counts = np.bincount(prepared.items, minlength=prepared.num_items + 1)[1:]
    pl.DataFrame(
        {
            "id": np.arange(1, prepared.num_items + 1, dtype=np.int32),
            "original": prepared.item_ids,
            "interactions": counts,
        }
    ).write_parquet(directory / "items.parquet")
    if prepared.attr_offsets is not None and prepared.attribute_names is not None:
        np.save(directory / "attr_offsets.npy", prepared.attr_offsets)
        np.save(directory / "attr_values.npy", prepared.attr_values)
        pl.DataFrame(
            {
                "id": np.arange(1, len(prepared.attribute_names) + 1, dtype=np.int32),
                "original": prepared.attribute_names,
            }
        ).write_parquet(directory / "attributes.parquet")


def sequence_stats(prepared: Prepared) -> dict[str, Any]:
    lengths = np.diff(prepared.offsets)
    stats: dict[str, Any] = {
        "users": prepared.num_users,
        "items": prepared.num_items,
        "interactions": len(prepared.items),
        "mean_length": float(lengths.mean()),
        "median_length": float(np.median(lengths)),
        "min_length": int(lengths.min()),
        "max_length": int(lengths.max()),
        "density": len(prepared.items) / (prepared.num_users * prepared.num_items),
    }
    if prepared.split_lengths is None:  # leave-one-out: users with a validation and test item
        stats["users_with_holdout"] = int((lengths >= 3).sum())
    if prepared.attr_offsets is not None and prepared.attribute_names is not None:
        per_item = np.diff(prepared.attr_offsets)[1:]
        stats["attributes"] = len(prepared.attribute_names)
        stats["items_with_attributes"] = int((per_item > 0).sum())
        stats["mean_attributes_per_item"] = float(per_item.mean())
    return stats
