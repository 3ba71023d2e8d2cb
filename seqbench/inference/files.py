"""The files `seqbench recommend` reads (users, new histories) and writes (top-k lists).

Inputs are checked before any model is loaded, and each problem is one line naming the file
(and line) and what was expected. Outputs are written whole or not at all (a temporary file
renamed into place), in the format the suffix names.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seqbench.errors import SeqbenchError
from seqbench.fsutil import atomic_file, check_creatable

OUTPUT_SUFFIXES = (".csv", ".parquet", ".jsonl")
TABLE_SUFFIXES = (".csv", ".parquet")  # inputs read as tables; anything else is text


def check_output(path: Path, *, force: bool,
                 suffixes: tuple[str, ...] | None = OUTPUT_SUFFIXES) -> None:
    """Refuse, before any work, an --out that could not be written or would replace a file
    (`suffixes`: the ones allowed; None when the caller has checked the format)."""
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise SeqbenchError(f"--out {path}: unknown suffix {path.suffix or '(none)'!r}; use "
                            f"{', '.join(suffixes)}")
    if path.is_dir():
        raise SeqbenchError(f"--out {path}: a directory, not a file")
    if path.exists() and not force:
        raise SeqbenchError(f"--out {path}: the file exists; --force replaces it")
    check_creatable(path, f"--out {path}")


def write_frame(frame: pl.DataFrame, path: Path) -> None:
    """`frame` to `path` as .csv, .parquet or .jsonl (one JSON object per row), atomically."""
    suffix = path.suffix.lower()
    try:
        with atomic_file(path) as f:
            if suffix == ".csv":
                frame.write_csv(f)
            elif suffix == ".parquet":
                frame.write_parquet(f)
            else:
                frame.write_ndjson(f)
    except OSError as exc:
        raise SeqbenchError(f"--out {path}: cannot write it ({exc.strerror or exc})") from exc


def read_users(path: Path) -> list[str]:
    """User ids: one per line (blank lines and `#` comments ignored), or the `user` column of
    a .csv/.parquet table."""
    if path.suffix.lower() in TABLE_SUFFIXES:
        column = _table(path, "--users", required=("user",))["user"]
        users = [u for u in column.to_list() if u is not None and u != ""]
    else:
        users = [line.strip() for line in _lines(path, "--users")]
        users = [u for u in users if u and not u.startswith("#")]
    if not users:
        raise SeqbenchError(f"--users {path}: no user ids in the file")
    return users


def read_histories(path: Path) -> pl.DataFrame:
    """New histories as rows (user, item), each user's items oldest first.

    Text: one user per line, `user item item ...` (whitespace-separated, oldest first; the
    S3-Rec authors' format). A .csv/.parquet table: columns user, item and optionally ts
    (ordered by ts, ties in file order; without ts, in file order)."""
    if path.suffix.lower() in TABLE_SUFFIXES:
        frame = _table(path, "--histories", required=("user", "item"))
        if "ts" in frame.columns:
            ts = frame["ts"].cast(pl.Float64, strict=False)
            if ts.null_count():
                raise SeqbenchError(f"--histories {path}: column ts must hold a number (unix "
                                    f"time) in every row")
            # each user's items by time; users stay in the order they first appear
            frame = (frame.with_columns(ts).with_row_index("_row")
                     .with_columns(pl.col("_row").min().over("user").alias("_first"))
                     .sort(["_first", "ts", "_row"]))
        frame = frame.select(pl.col("user").cast(pl.String), pl.col("item").cast(pl.String))
        frame = frame.filter(pl.col("user").is_not_null() & pl.col("item").is_not_null())
    else:
        users: list[str] = []
        items: list[str] = []
        for number, line in enumerate(_lines(path, "--histories"), 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) < 2:
                raise SeqbenchError(f"--histories {path}, line {number}: expected `user item "
                                    f"item ...`, got only {fields[0]!r}")
            users += [fields[0]] * (len(fields) - 1)
            items += fields[1:]
        frame = pl.DataFrame({"user": users, "item": items}, schema={"user": pl.String,
                                                                     "item": pl.String})
    if not len(frame):
        raise SeqbenchError(f"--histories {path}: no histories in the file")
    return frame


def _lines(path: Path, option: str) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise SeqbenchError(f"{option} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SeqbenchError(f"{option} {path}: cannot read it as text ({exc})") from None


def _table(path: Path, option: str, *, required: tuple[str, ...]) -> pl.DataFrame:
    if not path.is_file():
        raise SeqbenchError(f"{option} {path}: no such file")
    try:
        frame = (pl.read_parquet(path) if path.suffix.lower() == ".parquet"
                 else pl.read_csv(path, infer_schema=False))
    except (OSError, pl.exceptions.PolarsError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SeqbenchError(f"{option} {path}: not a readable table ({first})") from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SeqbenchError(f"{option} {path}: no column {missing[0]!r} (columns: "
                            f"{', '.join(frame.columns) or 'none'})")
    return frame
