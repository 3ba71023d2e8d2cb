"""Bring your own data: any CSV/TSV, Parquet or JSON-lines file with named columns."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from seqbench.data.raw import RawData
from seqbench.data.readers.textfiles import POLARS_ERRORS, iter_lines, read_bytes
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
    return RawData(expect_rows(path, frame.select("user", "item", "ts")),
                   timed=time_col is not None)


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
        try:
            return pl.read_csv(
                io.BytesIO(data),
                separator=_TEXT[kind],
                columns=wanted,
                infer_schema_length=10_000,
                schema_overrides={c: pl.Utf8 for c in wanted[:2]},
            )
        except POLARS_ERRORS:
            if len(wanted) == 3:  # most likely a bad time far below the rows that set its type
                error = _time_error(path, _read_as_text(data, kind, wanted)[wanted[2]], wanted[2])
                if error is not None:
                    raise error from None
            raise
    except DataError:
        raise
    except POLARS_ERRORS as exc:
        first = str(exc).strip().splitlines()
        raise DataError(path, f"could not be read ({first[0] if first else exc!r})") from None


def _read_as_text(data: bytes, kind: str, wanted: list[str]) -> pl.DataFrame:
    """The wanted columns as text, for finding a value that did not parse as its column's type."""
    return pl.read_csv(
        io.BytesIO(data),
        separator=_TEXT[kind],
        columns=wanted,
        schema_overrides={c: pl.Utf8 for c in wanted},
        infer_schema_length=0,
    )


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
            raise _time_error(path, column, name) or DataError(
                path,
                f"column {name!r} must hold numbers or dates, found text such as {column[0]!r}",
            ) from None
        return pl.col("ts").str.to_datetime(strict=True).dt.epoch("us")
    raise DataError(path, f"column {name!r} must hold numbers or dates, found {dtype}")


def _time_error(path: Path, column: pl.Series, name: str) -> DataError | None:
    """The first value of a text time column that is neither a number nor a date, with its line.

    Runs only after a vectorised parse failed, and stays vectorised: the first value says what
    the column holds (numbers, else dates), and the first value that does not parse as that is
    the bad one. Only then are the file's lines read, to give that value its line number.
    None when every value parses (the failure was something else).
    """
    present = column.is_not_null()
    if not present.any():
        return None
    first = int(present.arg_true()[0])
    numbers = column.cast(pl.Float64, strict=False)
    if numbers[first] is not None:
        parsed = numbers
    else:
        try:
            parsed = column.str.to_datetime(strict=False)
        except POLARS_ERRORS:  # no date format fits even one value
            parsed = pl.Series(name, [None] * len(column), dtype=pl.Datetime("us"))
    bad_rows = (present & parsed.is_null()).arg_true()
    if bad_rows.is_empty():
        return None
    row = int(bad_rows[0])
    value = column[row]
    problem = f"column {name!r} must hold numbers or dates, found {value!r}"
    kind = _kind(path)
    if kind in _PARQUET:
        return DataError(path, f"{problem} (row {row + 1})")
    line_no, line = _line_of_row(path, row, value, header=kind in _TEXT)
    return DataError(path, problem, line_no=line_no, line=line)


def _line_of_row(
    path: Path, row: int, value: str, *, header: bool
) -> tuple[int | None, bytes | None]:
    """The file line (1-based) that holds data row `row` (0-based) and its text.

    polars keeps every line of a CSV as a row (blank ones as empty rows), so row r is line r + 2
    after the header; JSON lines skip blank lines. If that line does not show `value` (a quoted
    field spanning lines shifts the count), the first line that does is taken instead.
    """
    needle = value.encode()
    data_row = -1
    first_showing: tuple[int, bytes] | None = None
    for line_no, raw in iter_lines(path):
        if header:
            if line_no == 1:
                continue
            data_row = line_no - 2
        elif raw.strip():
            data_row += 1
        else:
            continue
        shows_value = needle in raw
        if data_row == row and shows_value:
            return line_no, raw
        if shows_value and first_showing is None:
            first_showing = (line_no, raw)
        if data_row >= row and first_showing is not None:
            return first_showing
    return first_showing if first_showing is not None else (None, None)
