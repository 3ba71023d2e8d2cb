"""Amazon 2014 product metadata (`meta_<Category>.json[.gz]`, McAuley et al.).

Each line is a Python dict literal written with `repr`, not JSON: single-quoted strings,
double quotes when a string contains an apostrophe, backslash escapes (`\\'`, `\\xe9`,
`\\u2019`, ...), possibly True/False/None. The reference meaning of a line is
`ast.literal_eval(line)` (S3Rec used `eval`), but that costs ~0.2 ms a line: a minute for
meta_Beauty's 259k lines of 1-3 KB. So lines whose Python reading provably equals their JSON
reading are rewritten to JSON and decoded in bulk by polars, in threads; only the rest go
through `ast.literal_eval`, in file order, so the first bad line is the one reported.

Why the fast path is exact
--------------------------
A line takes the fast path only if it matches `_ESCAPED_LINE` (or `_SWAPPED_PLAIN_LINE`, the
special case without `"` or backslashes): spaces, `{`, then only the tokens `{ } [ ] : ,`,
string literals and JSON numbers, where every string or number is directly followed (after
spaces) by one of `: , ] }`. Strings are `'...'` or `"..."` with no raw control characters
and no escapes but `\\\\ \\' \\" \\b \\f \\n \\r \\t \\xhh \\uhhhh` (no surrogates). So:

* Python's tokenizer splits the line into exactly these tokens. Outside strings there are no
  letters (no `True`, `None`, `null`, no `b'..'`/`r'..'`/`u'..'` prefixes, no `0x1F`, `1j`);
  a string ends at its first unescaped delimiter, as in the pattern; two strings are never
  adjacent, so neither implicit concatenation `'a' 'b'` nor triple quotes `'''` pass.
* `_to_json` rewrites each string token into the JSON string with the same value (the escapes
  above mean the same in both languages once `\\xhh` becomes `\\u00hh`, `\\'` becomes `'` and
  a raw `"` becomes `\\"`) and leaves every other token as it is; JSON numbers are Python
  numbers (the integer part is kept far below Python's 4300-digit limit).
* If polars parses the result as JSON, the token sequence is a grammatical JSON document: an
  object, with string keys. Read as Python, the same sequence is a dict display of dicts,
  lists, strings and numbers, which `literal_eval` evaluates to the same values (nesting stays
  below the parser's limit of 200 because `_fast_ok` allows at most `_MAX_BRACKETS` `[`/`{`).
  Anything polars rejects (trailing commas, sets, `1e400`, unbalanced brackets) is left to
  `literal_eval`, which then decides, so rejecting too much only costs time.
* The two readings still differ on duplicate keys (Python keeps the last, polars the first),
  and polars coerces types (`'asin': 12` gives "12", `'categories': 'x'` gives [['x']]).
  So `_fast_ok` requires `"asin"`, `"brand"` and `"categories"` each to occur at most once in
  the JSON text (asin exactly once) and, where they occur, to be followed by `:` and a string
  (asin, brand) or a list of lists of strings (categories). Every real key is such an
  occurrence; any other occurrence is another string token or lies inside a string (after an
  escaped quote). So when the top-level key exists, the single occurrence is that key and its
  value has the right type; when it does not, polars gives null, as Python gives nothing.
"""

from __future__ import annotations

import ast
import gzip
import warnings
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl

from seqbench.data.readers.textfiles import BOM, POLARS_ERRORS, decode_line, is_gzip
from seqbench.errors import DataError

_EXPECTED = "expected a Python dict literal with a string 'asin'"
_SCHEMA = {"asin": pl.Utf8, "brand": pl.Utf8, "categories": pl.List(pl.List(pl.Utf8))}
_STRUCT = pl.Struct(_SCHEMA)
_BATCH_BYTES = 16 << 20  # read, split and classified this many bytes at a time, in threads
_DECODE_ROWS = 1000  # polars' json_decode is markedly faster per line on small inputs
_MAX_BRACKETS = 100  # more `[`/`{` than this in a line and nesting depth is not obviously < 200
_SWAP = bytes.maketrans(b"'\"", b"\"'")

# Rust regex syntax (polars); \x22 is `"` and \x27 is `'`. Numbers: JSON's grammar, with an
# integer part far from Python's 4300-digit limit.
_NUMBER = r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_ESCAPE = (
    r"\\(?:[\\\x27\x22bfnrt]|x[0-9a-fA-F]{2}"
    r"|u(?:[0-9a-cA-Ce-fE-F][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))"
)
# `'plain'` strings, seen after swapping `'` and `"` in the whole line (see `_bulk`).
_SWAPPED_PLAIN_STRING = r"\x22[^\x22\x27\\\x00-\x1f]*\x22"
_ESCAPED_STRING = (
    rf"\x27(?:[^\x27\\\x00-\x1f]|{_ESCAPE})*\x27"
    rf"|\x22(?:[^\x22\\\x00-\x1f]|{_ESCAPE})*\x22"
)


def _line_pattern(string: str) -> str:
    """`{`, then structure, spaces, strings and numbers; a value is followed by `:,]}`."""
    return rf"^ *\{{(?:[{{}}\[\]:, ]|(?:{string}|{_NUMBER}) *[:,\]}}])*$"


_SWAPPED_PLAIN_LINE = _line_pattern(_SWAPPED_PLAIN_STRING)
_ESCAPED_LINE = _line_pattern(_ESCAPED_STRING)
_JSON_STRING = r"\x22(?:[^\x22\\]|\\.)*\x22"
_JSON_STRINGS = rf"\[ *(?:{_JSON_STRING}(?: *, *{_JSON_STRING})*)? *\]"
_JSON_CATEGORIES = rf"\[ *(?:{_JSON_STRINGS}(?: *, *{_JSON_STRINGS})*)? *\]"
_BLANK = r"^[ \t]*$"

# What `_bulk` gives back for a run of lines: rows decoded as JSON, lines left to literal_eval,
# and the error for a line that is not UTF-8.
_Bulk = tuple[pl.DataFrame, pl.DataFrame, "DataError | None"]


def read_amazon_meta(path: Path) -> pl.DataFrame:
    """One row per non-blank line, in file order: asin, brand (null if absent), categories.

    `categories` is a list of category paths (each a list of strings), empty if absent.
    `None` for brand or categories counts as absent. A line that is not a dict literal with a
    string `asin`, a brand that is not a string, or categories that are not a list of lists
    of strings are a `DataError` naming the line. Blank lines (spaces, tabs) are skipped.
    Values are those of `ast.literal_eval(line)`, except that surrogate-pair escapes are joined
    into one character (a lone surrogate, which text cannot hold, is a `DataError`).
    """
    workers = max(1, min(4, pl.thread_pool_size()))
    frames: list[pl.DataFrame] = []
    running: deque[Future[_Bulk]] = deque()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            for line_no, chunk in _numbered_chunks(path):
                running.append(pool.submit(_bulk, path, line_no, chunk))
                if len(running) > 2 * workers:  # bounds memory to a few chunks
                    frames.append(_with_slow_lines(path, *running.popleft().result()))
            frames += [_with_slow_lines(path, *run.result()) for run in running]
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    if not frames:
        return pl.DataFrame(schema=_SCHEMA)
    return pl.concat(frames)


def item_attributes(meta: pl.DataFrame) -> pl.DataFrame:
    """S3Rec's item attributes, long format (asin, attribute): brand, then categories below top.

    As in S3Rec's preprocessing, brand and category names share one namespace, each category
    path loses its first element (the dataset's own name, on every item), the brand comes
    first (so attribute ids follow S3Rec's order) and a repeated asin keeps its last line.
    Beyond S3Rec, an item lists an attribute once (first occurrence) and a brand that is empty
    or whitespace is no attribute.
    """
    items = (
        meta.select("asin", "brand", "categories")
        .unique(subset="asin", keep="last", maintain_order=True)
        .with_row_index("item")
    )
    brands = items.filter(pl.col("brand").str.strip_chars() != "").select(
        "item", "asin", pl.col("brand").alias("attribute")
    )
    categories = (
        items.select("item", "asin", "categories")
        .explode("categories")
        .select("item", "asin", pl.col("categories").list.slice(1).alias("attribute"))
        .explode("attribute")
        .drop_nulls("attribute")
    )
    return (
        pl.concat([brands, categories])
        .sort("item", maintain_order=True)
        .unique(subset=["item", "attribute"], keep="first", maintain_order=True)
        .select("asin", "attribute")
    )


def _numbered_chunks(path: Path) -> Iterator[tuple[int, bytes]]:
    """(number of the first line, whole lines of about `_BATCH_BYTES`), read as needed.

    Reading (and gunzipping, which releases the GIL) goes on while worker threads parse the
    chunks already read. A damaged gzip is a `DataError`.
    """
    line_no, carry = 1, b""
    try:
        with gzip.open(path, "rb") if is_gzip(path) else path.open("rb") as f:
            if f.read(len(BOM)) != BOM:  # a byte-order mark is not part of line 1
                f.seek(0)
            while piece := f.read(_BATCH_BYTES):
                piece = carry + piece
                cut = piece.rfind(b"\n") + 1
                carry = piece[cut:]
                if cut:
                    yield line_no, piece[:cut]
                    line_no += piece.count(b"\n", 0, cut)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(path, f"truncated or corrupt gzip ({exc})") from None
    if carry:
        yield line_no, carry


def _bulk(path: Path, first_line_no: int, chunk: bytes) -> _Bulk:
    """The fast path for a run of lines (runs in a worker thread).

    Returns the rows decoded as JSON (line_no + columns), the lines left to `literal_eval`
    (line_no, line), and the error for a line that is not UTF-8 (the lines after it are not
    read; the ones before are, so that an earlier bad line is reported first).

    The chunk has `'` and `"` swapped first (one bytes.translate): that turns each line whose
    strings are all `'plain'` into its own JSON text. `_ESCAPED_LINE` is symmetric in the two
    quotes, `_to_json` undoes the swap inside strings, and the lines left to `literal_eval`
    are swapped back.
    """
    swapped = chunk.translate(_SWAP)
    try:
        lines = _split_lines(swapped)
    except UnicodeDecodeError as exc:
        start = chunk.rfind(b"\n", 0, exc.start) + 1
        fast, rest, _ = _bulk(path, first_line_no, chunk[:start])
        return (
            fast,
            rest,
            _utf8_error(path, first_line_no + chunk.count(b"\n", 0, start), chunk[start:]),
        )
    frame = (
        lines.with_row_index("line_no", offset=first_line_no)
        .filter(pl.col("swapped").is_not_null() & ~pl.col("swapped").str.contains(_BLANK))
        .with_columns(pl.col("swapped").str.contains(_SWAPPED_PLAIN_LINE).alias("plain"))
    )
    escaped = frame.filter(~pl.col("plain")).filter(pl.col("swapped").str.contains(_ESCAPED_LINE))
    candidates = pl.concat(
        [
            frame.filter("plain").select("line_no", pl.col("swapped").alias("json")),
            escaped.select("line_no", _to_json(pl.col("swapped")).alias("json")),
        ]
    ).filter(_fast_ok(pl.col("json")))
    fast = _decode_json(candidates)
    rest = frame.join(fast.select("line_no"), on="line_no", how="anti").select(
        "line_no", pl.col("swapped").str.replace_many(["'", '"'], ['"', "'"]).alias("line")
    )
    return fast, rest, None


def _with_slow_lines(
    path: Path, fast: pl.DataFrame, rest: pl.DataFrame, error: DataError | None
) -> pl.DataFrame:
    """All rows of a run in line order: `fast` plus `rest` read by `literal_eval`."""
    slow = _literal_eval_rows(path, rest)
    if error is not None:
        raise error
    return pl.concat([fast, slow]).sort("line_no").drop("line_no")


def _split_lines(swapped: bytes) -> pl.DataFrame:
    """Column `swapped`: the lines as text, without line endings (one `\\r` is dropped).

    polars' CSV reader with no quoting and a NUL separator splits and checks UTF-8 in
    parallel; a chunk it would get wrong (a NUL in a line, a leading BOM it would drop, bad
    UTF-8) or that it splits into the wrong number of lines is split by Python instead, which
    raises UnicodeDecodeError for bad UTF-8. Blank lines may come back as nulls.
    """
    expected = swapped.count(b"\n") + (bool(swapped) and not swapped.endswith(b"\n"))
    if not swapped.startswith(b"\xef\xbb\xbf"):
        try:
            frame = pl.read_csv(
                swapped,
                has_header=False,
                separator="\x00",
                quote_char=None,
                schema={"swapped": pl.Utf8},
            )
        except POLARS_ERRORS:
            pass
        else:
            if frame.height == expected:
                return frame
    lines = swapped.decode("utf-8").split("\n")
    if lines[-1] == "":
        lines.pop()  # the chunk ends with a line ending
    frame = pl.DataFrame({"swapped": lines}, schema={"swapped": pl.Utf8})
    return frame.with_columns(pl.col("swapped").str.strip_suffix("\r"))


def _utf8_error(path: Path, line_no: int, text: bytes) -> DataError:
    """The error for the first line of `text`, which is not UTF-8."""
    end = text.find(b"\n")
    try:
        decode_line(path, line_no, text[:end] if end >= 0 else text)
    except DataError as exc:
        return exc
    raise AssertionError("decode_line accepted a line that is not UTF-8")


def _to_json(swapped: pl.Expr) -> pl.Expr:
    """JSON text with the same values, for a quote-swapped line matching `_ESCAPED_LINE`.

    Strings are first fenced with the control characters \\x01/\\x02 (absent from such
    lines), so the later replacements only touch string contents, where every backslash
    starts an escape once the `\\\\` pairs (taken from the left, as Python does) are set
    aside as \\x05. In the swapped text an original `"` (raw or escaped) shows as `'` or
    `\\'` and becomes JSON's `\\"`; an original `'` shows as `"` or `\\"` and becomes a
    raw `'`; `\\xhh` becomes `\\u00hh`; the other escapes mean the same in JSON.
    """
    return (
        swapped.str.replace_all(
            r"\x27((?:[^\x27\\]|\\.)*)\x27|\x22((?:[^\x22\\]|\\.)*)\x22", "\x01${1}${2}\x02"
        )
        .str.replace_all("\\\\", "\x05", literal=True)
        .str.replace_all(r"\\?\x22", "\x06")
        .str.replace_all(r"\\?\x27", '\\"')
        .str.replace_all("\x06", "'", literal=True)
        .str.replace_all(r"\\x([0-9a-fA-F]{2})", "\\u00${1}")
        .str.replace_all("\x05", "\\\\", literal=True)
        .str.replace_all("[\x01\x02]", '"')
    )


def _fast_ok(json: pl.Expr) -> pl.Expr:
    """Lines whose JSON reading equals the Python one for our three keys (module doc)."""

    def at_most_once(key: str, value: str) -> pl.Expr:
        count = json.str.count_matches(f'"{key}"', literal=True)
        return (count == 0) | ((count == 1) & json.str.contains(f'"{key}" *: *{value}'))

    return (
        (json.str.count_matches('"asin"', literal=True) == 1)
        & json.str.contains('"asin" *: *"')
        & at_most_once("brand", '"')
        & at_most_once("categories", _JSON_CATEGORIES)
        & (json.str.count_matches(r"[\[{]") <= _MAX_BRACKETS)
    )


def _decode_json(candidates: pl.DataFrame) -> pl.DataFrame:
    """line_no, asin, brand, categories of the `json` lines polars can parse.

    One bad line makes polars reject the whole call, so a failing slice is halved until its
    bad lines are isolated (they are left out, for `literal_eval` to judge): a few bad lines
    cost a few extra calls, not one call per line.
    """
    good: list[pl.DataFrame] = []
    pending = [
        candidates.slice(i, _DECODE_ROWS)
        for i in reversed(range(0, candidates.height, _DECODE_ROWS))
    ]
    while pending:
        part = pending.pop()
        try:
            good.append(
                part.select("line_no", pl.col("json").str.json_decode(_STRUCT)).unnest("json")
            )
        except pl.exceptions.PolarsError:
            if part.height > 1:
                half = part.height // 2
                pending += [part.slice(half), part.slice(0, half)]
    fast = pl.concat(good) if good else pl.DataFrame(schema={"line_no": pl.UInt32, **_SCHEMA})
    # `_fast_ok` rules out a null asin; should polars still produce one, let Python judge.
    return fast.filter(pl.col("asin").is_not_null()).with_columns(
        pl.col("categories").fill_null([])
    )


def _literal_eval_rows(path: Path, lines: pl.DataFrame) -> pl.DataFrame:
    """The reference reading, line by line, for the lines the fast path does not take.

    Runs in the main thread only: the warnings filter it changes is process-wide. Python
    warns about invalid escapes such as `\\d` (which mean a backslash and a `d`), once per
    line; they are the data's business, not the user's.
    """
    rows: dict[str, list[Any]] = {"line_no": [], "asin": [], "brand": [], "categories": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        for line_no, line in lines.iter_rows():
            asin, brand, categories = _parse_line(path, line_no, line)
            rows["line_no"].append(line_no)
            rows["asin"].append(asin)
            rows["brand"].append(brand)
            rows["categories"].append(categories)
    return pl.DataFrame(rows, schema={"line_no": pl.UInt32, **_SCHEMA})


def _parse_line(path: Path, line_no: int, line: str) -> tuple[str, str | None, list[list[str]]]:
    """asin, brand, categories of one line read with `ast.literal_eval`, or a `DataError`."""
    try:
        record = ast.literal_eval(line)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise DataError(
            path,
            f"{_EXPECTED}, found invalid syntax ({type(exc).__name__})",
            line_no=line_no,
            line=line,
        ) from None
    if not isinstance(record, dict):
        raise DataError(
            path, f"{_EXPECTED}, found a {type(record).__name__}", line_no=line_no, line=line
        )
    asin = record.get("asin")
    if not isinstance(asin, str):
        found = "no 'asin'" if "asin" not in record else f"'asin' {asin!r}"
        raise DataError(path, f"{_EXPECTED}, found {found}", line_no=line_no, line=line)
    brand = record.get("brand")
    if brand is not None and not isinstance(brand, str):
        raise DataError(
            path, f"expected 'brand' to be a string, found {brand!r}", line_no=line_no, line=line
        )
    categories = record.get("categories")
    if categories is None:
        categories = []
    elif not (
        isinstance(categories, list)
        and all(isinstance(p, list) and all(isinstance(c, str) for c in p) for p in categories)
    ):
        raise DataError(
            path,
            "expected 'categories' to be a list of lists of strings",
            line_no=line_no,
            line=line,
        )
    if "\\" in line:  # only escapes can make strings that UTF-8 cannot hold

        def text(value: str) -> str:
            return _without_surrogates(path, line_no, line, value)

        asin = text(asin)
        brand = None if brand is None else text(brand)
        categories = [[text(c) for c in p] for p in categories]
    return asin, brand, categories


def _without_surrogates(path: Path, line_no: int, line: str, value: str) -> str:
    """`value` with surrogate pairs (`\\ud83d\\ude00`, as Python 2 wrote non-BMP characters)
    joined into one character; a lone surrogate cannot be stored as text and is a `DataError`.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return value.encode("utf-16", "surrogatepass").decode("utf-16")
        except UnicodeDecodeError:
            raise DataError(
                path,
                f"expected text, found a lone surrogate in {value!r}",
                line_no=line_no,
                line=line,
            ) from None
    return value
