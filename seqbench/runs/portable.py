"""A run directory that can recommend on its own: its dataset travels with it.

A finished `bench`/`finetune` run keeps, in `<run>/dataset/`, the files of the dataset cache
entry it trained on (docs/datasets.md): the interactions, the original user and item ids, the
attributes where there are some, and `meta.json` with the dataset's identity (name, cache key,
source checksums, options). With the weights in best.pt, that is everything inference needs,
so a run copied to another machine recommends without the raw files or a dataset cache
(docs/runs.md). The files are hard links into the cache when it is on the same file system
(cache entries are never modified, only replaced), copies otherwise.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from seqbench.errors import SeqbenchError
from seqbench.fsutil import commit, staging_dir

log = logging.getLogger(__name__)

RUN_DATASET_DIR = "dataset"
#: the cache entry's files a run keeps (attributes only where the dataset has them)
DATASET_FILES = ("meta.json", "sequences.npy", "offsets.npy", "users.parquet", "items.parquet")
#: where the dataset has them: attributes, and a temporal split's part lengths
OPTIONAL_FILES = ("attr_offsets.npy", "attr_values.npy", "attributes.parquet", "split.npy")


def attach_dataset(run_dir: Path, dataset_dir: Path) -> Path:
    """Put the dataset cache entry `dataset_dir` into `run_dir/dataset/` (whole or not at
    all). An existing copy of the same entry (a resumed run) is kept as it is."""
    target = Path(run_dir) / RUN_DATASET_DIR
    if target.is_dir() and _key(target) == _key(Path(dataset_dir)):
        return target
    names = list(DATASET_FILES)
    names += [name for name in OPTIONAL_FILES if (Path(dataset_dir) / name).exists()]
    try:
        with staging_dir(Path(run_dir), RUN_DATASET_DIR) as staging:
            for name in names:
                _link_or_copy(Path(dataset_dir) / name, staging / name)
            if target.exists():
                shutil.rmtree(target)
            commit(staging, target)
    except OSError as exc:
        raise SeqbenchError(f"cannot keep the dataset in {target}: {exc.strerror or exc}") from exc
    return target


def run_dataset_dir(run_dir: Path, config: dict[str, Any]) -> Path:
    """Where a run's dataset is: its own copy, or (a run recorded before runs carried their
    dataset) the cache entry config.json names, if it is still there and still the same."""
    own = Path(run_dir) / RUN_DATASET_DIR
    if (own / "meta.json").exists():
        return own
    resolved = config.get("resolved") if isinstance(config.get("resolved"), dict) else {}
    recorded = resolved.get("dataset_path")
    key = resolved.get("dataset_key")
    if isinstance(recorded, str) and Path(recorded).is_dir() and _key(Path(recorded)) == key:
        return Path(recorded)
    raise SeqbenchError(
        f"{run_dir}: the run holds no dataset/ (it was recorded before runs kept their data) "
        f"and its dataset cache {recorded or '(not recorded)'} is gone or was rebuilt; "
        f"prepare the same dataset again (seqbench prep with the run's data options)")


def _key(directory: Path) -> str | None:
    try:
        meta = json.loads((directory / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    key = meta.get("key") if isinstance(meta, dict) else None
    return key if isinstance(key, str) else None


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        os.link(source, destination)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            destination.unlink()
        shutil.copy2(source, destination)
