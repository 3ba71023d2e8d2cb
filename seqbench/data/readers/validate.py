"""Checks shared by the readers: the header a file must start with, and that it has rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seqbench.data.readers.textfiles import DelimitedFormat, decode_line, first_line
from seqbench.errors import DataError


def expect_header(path: Path, fmt: DelimitedFormat) -> None:
    """The first line must name the format's fields (case-insensitive), else a wrong column set."""
    raw = first_line(path)
    if not raw.strip():
        raise DataError(path, "is empty, expected a header line and rows")
    found = [name.strip().lower() for name in decode_line(path, 1, raw).split(fmt.separator)]
    if fmt.trailing_separator and found and found[-1] == "":
        found.pop()
    expected = [f.name.lower() for f in fmt.fields]
    if found != expected:
        names = fmt.separator.join(f.name for f in fmt.fields)
        raise DataError(path, f"wrong columns: expected header {names!r}", line_no=1, line=raw)


def expect_rows(path: Path, frame: pl.DataFrame) -> pl.DataFrame:
    """A file that parsed but holds no interactions is an error, not an empty dataset."""
    if frame.height == 0:
        raise DataError(path, "contains no interactions")
    return frame
