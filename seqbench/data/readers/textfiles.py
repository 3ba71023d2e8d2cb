"""Raw text files, plain or gzip: fast with polars, precise diagnostics when they are bad.

The fast path hands the whole file to polars. Polars' own errors carry byte offsets, not line
numbers, so when the fast path fails (or yields nulls) a slow line-by-line pass finds the first
offending line and reports it as `file:line: what was expected: 'the line'`. The slow pass only
ever runs on files that are already known to be bad.

A UTF-8 byte-order mark (which Excel and Windows editors put before the first line) is not
part of the data: every function here drops it, so a header still reads as its column names.
"""

from __future__ import annotations

import codecs
import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from seqbench.errors import DataError

POLARS_ERRORS = (pl.exceptions.PolarsError, OSError, ValueError)
BOM = codecs.BOM_UTF8  # b"\xef\xbb\xbf", the encoded "\ufeff"


def is_gzip(path: Path) -> bool:
    return path.suffix == ".gz"


def read_bytes(path: Path) -> bytes:
    """The file's content without a leading BOM, decompressed if it is gzip.

    A damaged gzip is a `DataError`. The BOM is skipped before reading the rest, so a large
    file is not copied just to drop three bytes.
    """
    opener = gzip.open if is_gzip(path) else open
    try:
        with opener(path, "rb") as f:
            if f.read(len(BOM)) != BOM:
                f.seek(0)
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(path, f"truncated or corrupt gzip ({exc})") from None


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line without line ending or BOM), streaming; for diagnostics."""
    opener = gzip.open if is_gzip(path) else open
    try:
        with opener(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                if number == 1:
                    line = line.removeprefix(BOM)
                yield number, line.rstrip(b"\r\n")
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(path, f"truncated or corrupt gzip ({exc})") from None


def first_line(path: Path) -> bytes:
    """The first line (empty for an empty file)."""
    for _, line in iter_lines(path):
        return line
    return b""


def decode_line(path: Path, line_no: int, line: bytes) -> str:
    """A line as text; bytes that are not UTF-8 are a `DataError` at that line."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            path,
            f"not UTF-8 text (byte {line[exc.start]:#04x} at column {exc.start + 1})",
            line_no=line_no,
            line=line,
        ) from None


@dataclass(frozen=True)
class Field:
    """One column of a delimited file: its name and how to check a value on the slow path."""

    name: str
    dtype: type[pl.DataType] | pl.DataType
    keep_as: str | None = None  # the canonical name when the column is kept (user/item/ts)

    def check(self, value: str) -> str | None:
        """None if `value` is valid for this field, else what was expected."""
        if value == "":
            return f"an empty {self.name}"
        if self.dtype in (pl.Int64, pl.Int32):
            try:
                int(value)
            except ValueError:
                return f"{self.name} {value!r} is not an integer"
        elif self.dtype == pl.Float64:
            try:
                float(value)
            except ValueError:
                return f"{self.name} {value!r} is not a number"
        return None


@dataclass(frozen=True)
class DelimitedFormat:
    """A delimited text format: separator, fields, and whether a header line comes first."""

    separator: str
    fields: tuple[Field, ...]
    header: bool = False
    trailing_separator: bool = False  # every line ends with the separator (an empty last field)

    @property
    def expected(self) -> str:
        names = self.separator.join(f.name for f in self.fields)
        suffix = " (and a trailing separator)" if self.trailing_separator else ""
        return f"{len(self.fields)} fields {names!r}{suffix}"


def read_delimited(
    path: Path, fmt: DelimitedFormat, transform: Callable[[bytes], bytes] | None = None
) -> pl.DataFrame:
    """Read the kept fields of a delimited file, renamed to their canonical names.

    `transform` rewrites the raw bytes before parsing (e.g. a multi-character separator that
    polars cannot split on); diagnostics then see the same rewritten lines.
    """
    schema = {f.name: f.dtype for f in fmt.fields}
    if fmt.trailing_separator:
        schema["__trailing__"] = pl.Utf8
    keep = {f.name: f.keep_as for f in fmt.fields if f.keep_as}
    try:
        if transform is None and not is_gzip(path):
            # Every field is parsed (no projection), so a malformed value in a column we do
            # not keep is still caught.
            frame = pl.read_csv(
                path,
                has_header=False,
                separator=fmt.separator,
                schema=schema,
                skip_rows=int(fmt.header),
                quote_char=None,
            ).select(list(keep))
        else:
            data = read_bytes(path)
            if transform is not None:
                data = transform(data)
            frame = pl.read_csv(
                io.BytesIO(data),
                has_header=False,
                separator=fmt.separator,
                schema=schema,
                skip_rows=int(fmt.header),
                quote_char=None,
            ).select(list(keep))
            del data
    except DataError:
        raise
    except POLARS_ERRORS as exc:
        raise diagnose(path, fmt, transform) or DataError(path, _short(exc)) from None
    frame = frame.rename(keep)
    if frame.null_count().sum_horizontal().item():
        error = diagnose(path, fmt, transform)
        if error is not None:
            raise error
        frame = frame.drop_nulls()  # only blank lines produced the nulls
    return frame


def diagnose(
    path: Path, fmt: DelimitedFormat, transform: Callable[[bytes], bytes] | None = None
) -> DataError | None:
    """The first line of `path` that does not match `fmt`, as an error; None if all do."""
    n_fields = len(fmt.fields) + int(fmt.trailing_separator)
    for line_no, raw in iter_lines(path):
        if fmt.header and line_no == 1:
            continue
        line = transform(raw) if transform is not None else raw
        if not line.strip():
            continue
        text = decode_line(path, line_no, line)
        values = text.split(fmt.separator)
        if len(values) != n_fields:
            return DataError(
                path,
                f"expected {fmt.expected}, found {len(values)} fields",
                line_no=line_no,
                line=raw,
            )
        if fmt.trailing_separator and values[-1].strip():
            return DataError(
                path,
                f"expected {fmt.expected}, found a value after the last field",
                line_no=line_no,
                line=raw,
            )
        for field, value in zip(fmt.fields, values, strict=False):
            problem = field.check(value)
            if problem is not None:
                return DataError(
                    path, f"expected {fmt.expected}, found {problem}", line_no=line_no, line=raw
                )
    return None


def _short(exc: BaseException) -> str:
    """The first line of a library error, for the rare failure the slow pass cannot place."""
    text = str(exc).strip().splitlines()
    return f"could not be parsed ({text[0] if text else type(exc).__name__})"
