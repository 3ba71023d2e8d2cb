"""Bring your own data: any CSV/TSV, Parquet or JSON-lines file with named columns."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from seqbench.data.raw import RawData
from seqbench.data.readers.textfiles import POLARS_ERRORS, read_bytes
from seqbench.data.readers.validate import expect_rows
from seqbench.errors import DataError

_TEXT = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_JSONL = {".jsonl", ".ndjson", ".json"}
_PARQUET = {".parquet", ".pq"}


def _kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    last = suffixes[-1] if suffixes else ""
    if last in _TEXT or last in _JSONL or last in _PARQUET:
        return last
    raise DataError(
        path, "unknown file type: expected .csv, .tsv, .parquet or .jsonl (optionally .gz for text)"
    )


def read_generic(path: Path, user_col: str, item_col: str, time_col: str | None) -> RawData:
    wanted = [c for c in (user_col, item_col, time_col) if c]
    if len(set(wanted)) != len(wanted):
        raise DataError(path, f"--user-col, --item-col and --time-col must differ, got {wanted}")
    frame = _read(path, wanted)
    frame = frame.rename({user_col: "user", item_col: "item"})
    if frame["user"].null_count() or frame["item"].null_count():
        row = frame.with_row_index().filter(pl.col("user").is_null() | pl.col("item").is_null())
        raise DataError(path, f"row {row['index'][0] + 1} has no {user_col} or {item_col}")
    if time_col is None:
        frame = frame.with_row_index("ts").with_columns(pl.col("ts").cast(pl.Int64))
    else:
        frame = frame.rename({time_col: "ts"}).with_columns(
            _as_int_time(path, frame[time_col], time_col)
        )
    return RawData(expect_rows(path, frame.select("user", "item", "ts")))


def _read(path: Path, wanted: list[str]) -> pl.DataFrame:
    kind = _kind(path)
    try:
        if kind in _PARQUET:
            columns = pl.read_parquet_schema(path)
            _check_columns(path, list(columns), wanted)
            return pl.read_parquet(path, columns=wanted)
        data = read_bytes(path)
        if kind in _JSONL:
            frame = pl.read_ndjson(io.BytesIO(data), infer_schema_length=10_000)
            _check_columns(path, frame.columns, wanted)
            return frame.select(wanted)
        frame = pl.read_csv(
            io.BytesIO(data),
            separator=_TEXT[kind],
            infer_schema_length=10_000,
            schema_overrides={c: pl.Utf8 for c in wanted[:2]},
            n_rows=0,
        )
        _check_columns(path, frame.columns, wanted)
        return pl.read_csv(
            io.BytesIO(data),
            separator=_TEXT[kind],
            columns=wanted,
            infer_schema_length=10_000,
            schema_overrides={c: pl.Utf8 for c in wanted[:2]},
        )
    except DataError:
        raise
    except POLARS_ERRORS as exc:
        first = str(exc).strip().splitlines()
        raise DataError(path, f"could not be read ({first[0] if first else exc!r})") from None


def _check_columns(path: Path, found: list[str], wanted: list[str]) -> None:
    missing = [c for c in wanted if c not in found]
    if missing:
        raise DataError(
            path,
            f"wrong columns: no column {missing[0]!r}; the file has: "
            f"{', '.join(found)} (choose with --user-col/--item-col/--time-col)",
        )


def _as_int_time(path: Path, column: pl.Series, name: str) -> pl.Expr:
    """Order-preserving integer time: integers as they are, floats and dates by rank or epoch."""
    dtype = column.dtype
    if dtype.is_integer():
        return pl.col("ts").cast(pl.Int64)
    if dtype.is_float():
        return pl.col("ts").rank("dense").cast(pl.Int64)
    if dtype in (pl.Date, pl.Datetime) or isinstance(dtype, pl.Datetime):
        return pl.col("ts").cast(pl.Datetime("us")).dt.epoch("us")
    if dtype == pl.Utf8:
        try:
            column.str.to_datetime(strict=True)
        except POLARS_ERRORS:
            raise DataError(
                path,
                f"column {name!r} must hold numbers or dates, found text such as {column[0]!r}",
            ) from None
        return pl.col("ts").str.to_datetime(strict=True).dt.epoch("us")
    raise DataError(path, f"column {name!r} must hold numbers or dates, found {dtype}")
