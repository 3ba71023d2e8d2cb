"""The fixed negatives of the sampled protocols (docs/protocols.md): [users, N] item ids.

* `sampled-N`: N distinct items the user never interacted with, drawn uniformly from 1..I
  with a generator seeded by (seed, user). `sampled-99` is the S3Rec paper's protocol; its
  draws are exactly those of seqbench 0.1 (a test pins them).
* `sampled-N-popular`: N distinct items the user never interacted with, drawn without
  replacement with probability proportional to their training interactions (BERT4Rec's
  protocol), seeded by (seed, user, a constant of its own). Items without a training
  interaction are never drawn.
* `sampled-file`: the negatives listed per user in a file (S3-Rec's released
  `<data>_sample.txt`: `user neg1 ... negN` a line, in the dataset's original ids).

The same user gets the same negatives in every epoch, in both splits and in every run with the
same seed (or file). Every array is int64 internal item ids 1..I.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from seqbench.data.dataset import Dataset
from seqbench.errors import DataError, SeqbenchError
from seqbench.vocabulary import Protocol

#: the third seed word of the popular draws, so they never share a stream with uniform ones
POPULAR_STREAM = 0x706F70  # "pop"


def negatives_for(protocol: Protocol, dataset: Dataset, users: np.ndarray,
                  targets: np.ndarray | None, *, seed: int, counts: np.ndarray | None = None,
                  negatives_file: str | Path | None = None) -> np.ndarray:
    """The negatives of `protocol` for `users` (dataset user ids) whose targets are `targets`."""
    if protocol.kind == "file":
        if negatives_file is None:
            raise SeqbenchError("--protocol sampled-file needs --negatives-file FILE")
        if targets is None:
            raise ValueError("sampled-file negatives need the users' targets")
        return file_negatives(negatives_file, dataset, users, targets)
    if protocol.kind != "sampled" or protocol.negatives is None:
        raise ValueError(f"{protocol.name} draws no negatives")
    if protocol.popular:
        if counts is None:
            raise ValueError(f"{protocol.name} needs the training counts")
        return popular_negatives(dataset, users, seed, protocol.negatives, counts)
    return uniform_negatives(dataset, users, seed, protocol.negatives)


def uniform_negatives(dataset: Dataset, users: np.ndarray, seed: int, n: int) -> np.ndarray:
    """[len(users), n] distinct item ids each user never interacted with, uniform over 1..I,
    fixed by (seed, user): rounds of 2n draws, keeping new unseen ids in the order drawn."""
    _check_enough(f"sampled-{n}", n, dataset, users, None)
    out = np.empty((len(users), n), dtype=np.int64)
    for row, user in enumerate(users):
        rng = np.random.default_rng([seed, int(user)])
        seen = np.unique(dataset.sequence(int(user)))
        chosen: list[np.ndarray] = []
        total = 0
        while total < n:
            draw = rng.integers(1, dataset.num_items + 1, size=2 * n)
            draw = draw[~np.isin(draw, seen)]
            _, first = np.unique(draw, return_index=True)
            draw = draw[np.sort(first)]
            draw = draw[~np.isin(draw, np.concatenate(chosen))] if chosen else draw
            chosen.append(draw[: n - total])
            total += len(chosen[-1])
        out[row] = np.concatenate(chosen)
    return out


def popular_negatives(dataset: Dataset, users: np.ndarray, seed: int, n: int,
                      counts: np.ndarray) -> np.ndarray:
    """[len(users), n] distinct item ids each user never interacted with, drawn without
    replacement with probability proportional to `counts` (training interactions per item id,
    index 0 unused), fixed by (seed, user).

    An exponential race, the same draw as Gumbel-top-k over log(counts): every candidate gets
    E / count with E ~ Exp(1), and the n smallest win. Candidates are the items with a training
    interaction; the user's items are pushed out with an infinite key. Ordered by key, so the
    first negative is the first one drawn."""
    counts = np.asarray(counts)
    pool = np.flatnonzero(counts[1 : dataset.num_items + 1] > 0) + 1
    _check_enough(f"sampled-{n}-popular", n, dataset, users, counts)
    weights = counts[pool].astype(np.float64)
    position = np.full(dataset.num_items + 1, -1, dtype=np.int64)
    position[pool] = np.arange(len(pool))
    out = np.empty((len(users), n), dtype=np.int64)
    for row, user in enumerate(users):
        rng = np.random.default_rng([seed, int(user), POPULAR_STREAM])
        keys = rng.standard_exponential(len(pool)) / weights
        seen = position[dataset.sequence(int(user))]
        keys[seen[seen >= 0]] = np.inf
        best = np.argpartition(keys, n - 1)[:n] if n < len(pool) else np.arange(len(pool))
        out[row] = pool[best[np.argsort(keys[best], kind="stable")]]
    return out


def file_negatives(path: str | Path, dataset: Dataset, users: np.ndarray,
                   targets: np.ndarray) -> np.ndarray:
    """[len(users), N] the negatives listed for each user in `path` (one line per user:
    `user neg1 ... negN`, whitespace-separated, the dataset's original ids), checked: every
    line has the same N, names a user and items of the dataset, and never lists its user's
    target; every user in `users` has a line. Users of the file not in `users` are ignored."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SeqbenchError(f"{path}: cannot read the negatives file ({exc})") from None
    user_ids = _original_ids(dataset.user_table(), start=0)
    item_ids = _original_ids(dataset.item_table(), start=1)
    target_of = dict(zip(users.tolist(), np.asarray(targets).tolist(), strict=True))
    listed: dict[int, np.ndarray] = {}
    width: int | None = None
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        user = user_ids.get(fields[0])
        if user is None:
            raise DataError(path, f"user {fields[0]!r} is not in the dataset", line_no=line_no)
        if user in listed:
            raise DataError(path, f"user {fields[0]!r} has a second line", line_no=line_no)
        if len(fields) == 1:
            raise DataError(path, f"user {fields[0]!r} lists no negatives", line_no=line_no)
        if width is None:
            width = len(fields) - 1
        elif len(fields) - 1 != width:
            raise DataError(path, f"{len(fields) - 1} negatives, but the lines before list "
                                  f"{width}", line_no=line_no)
        negatives = np.empty(width, dtype=np.int64)
        for column, token in enumerate(fields[1:]):
            item = item_ids.get(token)
            if item is None:
                raise DataError(path, f"item {token!r} is not in the dataset", line_no=line_no)
            negatives[column] = item
        target = target_of.get(user)
        if target is not None and (negatives == target).any():
            original = fields[1 + int(np.flatnonzero(negatives == target)[0])]
            raise DataError(path, f"item {original!r} is user {fields[0]!r}'s target, not a "
                                  f"negative", line_no=line_no)
        listed[user] = negatives
    if width is None:
        raise SeqbenchError(f"{path}: the negatives file is empty")
    out = np.empty((len(users), width), dtype=np.int64)
    originals = None
    for row, user in enumerate(users.tolist()):
        negatives = listed.get(user)
        if negatives is None:
            originals = originals if originals is not None else dataset.user_table()
            name = originals.filter(originals["id"] == user)["original"].item()
            raise SeqbenchError(f"{path}: no line for user {str(name)!r}, who is evaluated")
        out[row] = negatives
    return out


def _original_ids(table: pl.DataFrame, *, start: int) -> dict[str, int]:
    """Original id (as text) -> internal id, from a users or items table."""
    ids = table["id"].to_list()
    originals = table["original"].cast(pl.String).to_list()
    if ids != list(range(start, start + len(ids))):
        raise ValueError("an id table that is not numbered in order")
    return dict(zip(originals, ids, strict=True))


def _check_enough(name: str, n: int, dataset: Dataset, users: np.ndarray,
                  counts: np.ndarray | None) -> None:
    """Every user in `users` must have `n` candidates: items they never interacted with (and,
    for popular draws, with a training interaction)."""
    if len(users) == 0:
        return
    size = dataset.num_items + 1
    rows = np.repeat(np.arange(dataset.num_users, dtype=np.int64), dataset.lengths)
    pairs = np.unique(rows * size + dataset.items.astype(np.int64))
    candidate = np.ones(size, dtype=bool) if counts is None else np.asarray(counts)[:size] > 0
    candidate[0] = False
    pairs = pairs[candidate[pairs % size]]
    seen = np.bincount(pairs // size, minlength=dataset.num_users)[users]
    limit = int(candidate.sum()) - int(seen.max())
    if limit < n:
        pool = "items" if counts is None else "items with a training interaction"
        most = (f"at most {name.replace(str(n), str(limit), 1)} here" if limit >= 1
                else "no sampled protocol of this kind fits")
        raise SeqbenchError(f"--protocol {name} needs {n} negatives per user, but some "
                            f"evaluated user never interacted with only {limit} {pool} "
                            f"({most})")
