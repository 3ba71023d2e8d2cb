"""Amazon 2014 (McAuley et al.): the ratings-only CSV, 5-core reviews and product metadata."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl

from seqbench.data.raw import RawData
from seqbench.data.readers.textfiles import (
    POLARS_ERRORS,
    DelimitedFormat,
    Field,
    decode_line,
    iter_lines,
    read_bytes,
    read_delimited,
)
from seqbench.data.readers.validate import expect_header, expect_rows
from seqbench.errors import DataError

_RATING_FIELDS = (
    Field("user", pl.Utf8, "user"),
    Field("item", pl.Utf8, "item"),
    Field("rating", pl.Float64),
    Field("ts", pl.Int64, "ts"),
)
_HEADER_FIELDS = (
    Field("UserId", pl.Utf8, "user"),
    Field("ProductId", pl.Utf8, "item"),
    Field("Rating", pl.Float64),
    Field("Timestamp", pl.Int64, "ts"),
)


def sniff_ratings_format(path: Path) -> DelimitedFormat:
    """SNAP's file has no header; a widespread copy has `UserId,ProductId,Rating,Timestamp,`.

    The header is recognised by its first field; a trailing comma is recognised on the first
    data line (it makes every line end with an empty field).
    """
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None or not first[1].strip():
        raise DataError(path, "is empty, expected lines 'user,item,rating,unix_ts'")
    header = decode_line(path, 1, first[1]).split(",")[0].strip().lower() == "userid"
    data_line = next(lines, (2, b""))[1] if header else first[1]
    trailing = data_line.rstrip().endswith(b",")
    fields = _HEADER_FIELDS if header else _RATING_FIELDS
    return DelimitedFormat(",", fields, header=header, trailing_separator=trailing)


def read_ratings_csv(path: Path) -> RawData:
    fmt = sniff_ratings_format(path)
    if fmt.header:
        expect_header(
            path,
            DelimitedFormat(
                ",", fmt.fields, header=True, trailing_separator=_header_has_trailing_comma(path)
            ),
        )
    return RawData(expect_rows(path, read_delimited(path, fmt)))


def _header_has_trailing_comma(path: Path) -> bool:
    _, line = next(iter_lines(path))
    return line.rstrip().endswith(b",")


_REVIEW_KEYS = {"reviewerID": pl.Utf8, "asin": pl.Utf8, "unixReviewTime": pl.Int64}


def read_reviews(path: Path) -> pl.DataFrame:
    """5-core reviews, JSON lines: only reviewer, product and review time are kept."""
    data = read_bytes(path)
    try:
        frame = pl.read_ndjson(io.BytesIO(data), schema=_REVIEW_KEYS)
    except POLARS_ERRORS:
        raise _diagnose_reviews(path) or DataError(
            path, "could not be parsed as JSON lines"
        ) from None
    if frame.null_count().sum_horizontal().item():
        raise _diagnose_reviews(path) or DataError(path, "has reviews with missing fields")
    frame = frame.rename({"reviewerID": "user", "asin": "item", "unixReviewTime": "ts"})
    return expect_rows(path, frame)


def _diagnose_reviews(path: Path) -> DataError | None:
    expected = "a JSON object with reviewerID, asin and integer unixReviewTime"
    for line_no, raw in iter_lines(path):
        if not raw.strip():
            continue
        text = decode_line(path, line_no, raw)
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            return DataError(
                path,
                f"expected {expected}, found invalid JSON ({exc.msg})",
                line_no=line_no,
                line=raw,
            )
        if not isinstance(record, dict):
            return DataError(path, f"expected {expected}", line_no=line_no, line=raw)
        missing = [key for key in _REVIEW_KEYS if key not in record or record[key] is None]
        if missing:
            return DataError(
                path,
                f"expected {expected}, missing {', '.join(missing)}",
                line_no=line_no,
                line=raw,
            )
        ts = record["unixReviewTime"]
        if isinstance(ts, bool) or not isinstance(ts, int):
            return DataError(
                path, f"expected {expected}, unixReviewTime is {ts!r}", line_no=line_no, line=raw
            )
    return None


def read_5core(reviews: Path, meta: Path) -> RawData:
    """Reviews give the interactions; metadata gives attributes (categories below top + brand)."""
    from seqbench.data.readers.amazon_meta import item_attributes, read_amazon_meta

    interactions = read_reviews(reviews)
    attributes = item_attributes(read_amazon_meta(meta)).rename({"asin": "item"})
    return RawData(interactions, attributes)
