"""MovieLens ratings: `ratings.csv` (ml-20m, ml-latest*), `ratings.dat` (ml-1m), `u.data`."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seqbench.data.raw import RawData
from seqbench.data.readers.textfiles import DelimitedFormat, Field, read_delimited
from seqbench.data.readers.validate import expect_header, expect_rows

_FIELDS = (
    Field("userId", pl.Int64, "user"),
    Field("movieId", pl.Int64, "item"),
    Field("rating", pl.Float64),
    Field("timestamp", pl.Int64, "ts"),
)
RATINGS_CSV = DelimitedFormat(",", _FIELDS, header=True)
RATINGS_DAT = DelimitedFormat("\t", _FIELDS)  # `::` is rewritten to a tab before parsing
U_DATA = DelimitedFormat("\t", _FIELDS)


def read_ratings_csv(path: Path) -> RawData:
    expect_header(path, RATINGS_CSV)
    return RawData(expect_rows(path, read_delimited(path, RATINGS_CSV)))


def read_ratings_dat(path: Path) -> RawData:
    # polars splits on one character only; ml-1m's fields never contain a tab.
    frame = read_delimited(path, RATINGS_DAT, transform=lambda data: data.replace(b"::", b"\t"))
    return RawData(expect_rows(path, frame))


def read_u_data(path: Path) -> RawData:
    return RawData(expect_rows(path, read_delimited(path, U_DATA)))
