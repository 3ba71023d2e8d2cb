"""The S3-Rec authors' preprocessed format: `Beauty.txt` + `Beauty_item2attributes.json`.

`Beauty.txt` holds one user per line, `user item item ...`, already chronological, so the
position in the line is the timestamp. Ids are kept as integers, so the id mapping (sorted by
original id) reproduces the authors' 1-based ids exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from seqbench.data.raw import RawData
from seqbench.data.readers.textfiles import decode_line, iter_lines, read_bytes
from seqbench.errors import DataError

_EXPECTED_LINE = "'user item item ...' (integers separated by spaces)"


def read_sequences(path: Path) -> pl.DataFrame:
    users: list[int] = []
    items: list[int] = []
    positions: list[int] = []
    for line_no, raw in iter_lines(path):
        tokens = decode_line(path, line_no, raw).split()
        if not tokens:
            continue
        try:
            ids = [int(token) for token in tokens]
        except ValueError:
            raise DataError(path, f"expected {_EXPECTED_LINE}", line_no=line_no, line=raw) from None
        if len(ids) < 2:
            raise DataError(
                path,
                f"expected {_EXPECTED_LINE}, found a user without items",
                line_no=line_no,
                line=raw,
            )
        users.extend([ids[0]] * (len(ids) - 1))
        items.extend(ids[1:])
        positions.extend(range(len(ids) - 1))
    if not items:
        raise DataError(path, "contains no interactions")
    return pl.DataFrame(
        {"user": users, "item": items, "ts": positions},
        schema={"user": pl.Int64, "item": pl.Int64, "ts": pl.Int64},
    )


def read_item_attributes(path: Path) -> pl.DataFrame:
    """`{"item": [attribute, ...], ...}` -> long (item, attribute), both integers as given."""
    try:
        mapping = json.loads(read_bytes(path))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON ({exc.msg})", line_no=exc.lineno) from None
    except UnicodeDecodeError:
        raise DataError(path, "not UTF-8 text, expected a JSON object") from None
    if not isinstance(mapping, dict):
        raise DataError(path, 'expected a JSON object {"item": [attribute, ...]}')
    items: list[int] = []
    attributes: list[int] = []
    for key, values in mapping.items():
        try:
            item = int(key)
            ids = [int(v) for v in values]
            if any(isinstance(v, bool) or not isinstance(v, int | str) for v in values):
                raise TypeError
        except (TypeError, ValueError):
            raise DataError(
                path,
                f'expected {{"item": [attribute, ...]}} with integer ids, '
                f"found {key!r}: {values!r}"[:200],
            ) from None
        items.extend([item] * len(ids))
        attributes.extend(ids)
    return pl.DataFrame(
        {"item": items, "attribute": attributes}, schema={"item": pl.Int64, "attribute": pl.Int64}
    )


def read_s3rec(sequences: Path, attributes: Path | None) -> RawData:
    frame = read_sequences(sequences)
    return RawData(frame, read_item_attributes(attributes) if attributes is not None else None,
                   timed=False)  # positions only: the format has no times
