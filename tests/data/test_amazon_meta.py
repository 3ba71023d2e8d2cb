"""Amazon 2014 metadata reader: every line must read as `ast.literal_eval` reads it.

The reader decodes most lines as JSON for speed; these tests hold it to the reference
semantics on hand-picked tricky lines, on random `repr` output, and on randomly damaged lines
(which the fast path must reject exactly when Python does).
"""

from __future__ import annotations

import ast
import gzip
import random
import warnings
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from seqbench.data.readers import amazon_meta
from seqbench.data.readers.amazon_meta import item_attributes, read_amazon_meta
from seqbench.errors import DataError

Row = tuple[str, Any, Any]

TRICKY = [
    # plain: the common case
    "{'asin': '0205616461', 'title': 'Foo', 'price': 10.5, 'related': {'also_bought': ['B001',"
    " 'B002'], 'bought_together': ['B003']}, 'salesRank': {'Beauty': 112}, 'categories':"
    " [['Beauty', 'Skin Care', 'Face', 'Creams & Moisturizers'], ['Beauty', 'Makeup']],"
    " 'brand': 'Nivea'}",
    # double-quoted strings with apostrophes, escaped quotes of both kinds
    "{'asin': 'A1', 'title': \"L'Oreal Paris Foo\", 'brand': \"L'Oreal\", 'description':"
    " 'It\\'s \"great\"', 'categories': [['Beauty', \"Men's\"]]}",
    "{'asin': 'A2', 'brand': 'Say \"hi\"', 'categories': [['Beauty', 'a \"b\" c']]}",
    "{'asin': 'A3', 'brand': \"both ' and \\\" here\", 'categories': [['x', 'it\\'s']]}",
    # backslashes, newlines, tabs, \x and \u escapes, non-ASCII written raw
    "{'asin': 'A4', 'brand': 'back\\\\slash', 'description': 'line\\nbreak\\ttab\\r',"
    " 'categories': [['Beauty', 'caf\\xe9', 'don\\u2019t', 'Caf\u00e9 \u2019 \U0001f600']]}",
    "{'asin': 'A5', 'brand': '\\\\', 'categories': [['\\\\\\'', '\\\\\\\\', 'end\\\\']]}",
    "{'asin': 'A6', 'brand': '\\x00\\x1f\\x7f\\xff', 'categories': [['\\b\\f', '\\u00e9\\uffff']]}",
    # True/False/None anywhere, None brand and categories
    "{'asin': 'A7', 'flag': True, 'other': False, 'brand': None, 'categories': None}",
    "{'asin': 'A8', 'related': {'x': None}, 'brand': 'B', 'categories': [['C', 'D']]}",
    # missing / empty brand and categories
    "{'asin': 'A9'}",
    "{'asin': 'A10', 'brand': '', 'categories': []}",
    "{'asin': 'A11', 'brand': '   ', 'categories': [[]]}",
    "{'asin': '', 'categories': [['Beauty'], [], ['Beauty', 'Nails']]}",
    # keys inside strings and nested dicts must not be mistaken for the real ones
    "{'asin': 'A12', 'description': \"'brand': 'Fake', 'categories': [['X']]\", 'brand': 'Real'}",
    "{'asin': 'A13', 'description': \"'brand': 'Fake', 'categories': [['X']], 'asin': 'no'\"}",
    "{'asin': 'A14', 'related': {'brand': 'Nested', 'categories': [['N']], 'asin': 'n'}}",
    "{'asin': 'A15', 'x': {'y': {'brand': ['deep'], 'categories': 'not top'}}, 'brand': 'Top'}",
    "{'asin': 'A16', 'description': '\"asin\": \"json-looking\", \"brand\": \"x\"'}",
    "{'asin': 'A17', 'brand': 'asin', 'categories': [['brand', 'categories', 'asin']]}",
    # Python-only syntax: duplicate keys (last wins), numbers, trailing commas, sets, tuples
    "{'asin': 'first', 'brand': 'b1', 'asin': 'A18', 'brand': 'b2'}",
    "{'asin': 'A19', 'price': -1.5e-3, 'n': 0, 'm': 1E5, 'big': 1e400, 'h': 0x1F, 'u': 1_000}",
    "{'asin': 'A20', 'related': {'also': ['B1', 'B2',],}, 'categories': [['a', 'b',],],}",
    "{'asin': 'A21', 'tags': {'a', 'b'}, 'pair': ('x', 'y'), 'c': 1+2j}",
    "{'asin': 'A22', 'brand': 'implicit' ' concatenation', 'title': '''triple'''}",
    "{'asin': u'A23', 'brand': r'raw\\d', 'description': b'bytes'}",
    "  {'asin': 'A24', 'brand': 'leading spaces'}   ",
    "{'asin':'A25','brand':'tight','categories':[['a','b'],['c']]}",
    "{ 'asin' : 'A26' , 'brand' : 'loose' , 'categories' : [ [ 'a' , 'b' ] ] }",
    # invalid escapes keep their backslash (and make Python warn)
    "{'asin': 'A27', 'brand': 'C:\\dir\\q', 'categories': [['\\d']], 'x': '\\/'}",
]


# Lines the fast path must take: quotes, escapes, key names inside strings.
FAST = {
    "0205616461",
    "A1",
    "A2",
    "A3",
    "A4",
    "A5",
    "A6",
    "A9",
    "A10",
    "A11",
    "",
    "A12",
    "A13",
    "A16",
    "A24",
    "A25",
    "A26",
}


def _label(line: str) -> str:
    """The first asin written in a line (the one TRICKY uses as the line's name)."""
    return line.split("'asin'", 1)[1].split("'")[1]


def _literal_eval(line: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        return ast.literal_eval(line)


def _reference(line: str) -> Row:
    """What a line means: `ast.literal_eval` plus the reader's documented rules."""
    record = _literal_eval(line)
    categories = record.get("categories")
    return record["asin"], record.get("brand"), [] if categories is None else categories


def _rows(frame: pl.DataFrame) -> list[Row]:
    return [(r["asin"], r["brand"], r["categories"]) for r in frame.iter_rows(named=True)]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
    return path


@pytest.fixture
def slow_lines(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The lines that went through `literal_eval` (the slow path), recorded as they pass."""
    seen: list[str] = []
    original = amazon_meta._literal_eval_rows

    def recording(path: Path, lines: pl.DataFrame) -> pl.DataFrame:
        seen.extend(lines["line"].to_list())
        return original(path, lines)

    monkeypatch.setattr(amazon_meta, "_literal_eval_rows", recording)
    return seen


def test_tricky_lines_equal_literal_eval(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reader keeps Python's escape warnings to itself
        frame = read_amazon_meta(_write(tmp_path / "meta.json", TRICKY))
    assert frame.schema == pl.Schema(
        {"asin": pl.Utf8, "brand": pl.Utf8, "categories": pl.List(pl.List(pl.Utf8))}
    )
    for line, got, expected in zip(TRICKY, _rows(frame), map(_reference, TRICKY), strict=True):
        assert got == expected, line


def test_tricky_lines_one_at_a_time_and_shuffled(tmp_path: Path) -> None:
    """Same answers whatever the neighbours (the bulk decoder fails batches, not lines)."""
    lines = TRICKY * 3
    random.Random(1).shuffle(lines)
    got = _rows(read_amazon_meta(_write(tmp_path / "meta.json", lines)))
    assert got == [_reference(line) for line in lines]
    for i, line in enumerate(TRICKY[:6]):
        assert _rows(read_amazon_meta(_write(tmp_path / f"{i}.json", [line]))) == [_reference(line)]


def test_escaped_lines_take_the_fast_path(tmp_path: Path, slow_lines: list[str]) -> None:
    """Quotes and escapes are translated to JSON, not left to literal_eval (speed matters)."""
    lines = [line for line in TRICKY if _label(line) in FAST]
    assert len(lines) == len(FAST)
    frame = read_amazon_meta(_write(tmp_path / "meta.json", lines))
    assert slow_lines == []
    assert _rows(frame) == [_reference(line) for line in lines]


def test_python_only_syntax_falls_back_to_literal_eval(
    tmp_path: Path, slow_lines: list[str]
) -> None:
    """Lines JSON cannot read as Python does go to literal_eval (more may, to be safe)."""
    read_amazon_meta(_write(tmp_path / "meta.json", TRICKY))
    python_only = {"A7", "A8", "first", "A19", "A20", "A21", "A22", "A23"}
    assert python_only <= {_label(line) for line in slow_lines}
    assert not FAST & {_label(line) for line in slow_lines}


# -- random repr output -------------------------------------------------------------------

_ALPHABET = (
    "abcXYZ09 '\"\\\n\t\r\x00\x01\x1f\x7f\x80\xa0\xe9\xff\u2019\u2028\ufeff\U0001f600\u0394{}[]:,#"
)


def _random_string(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 12)))


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randint(0, 8 if depth < 3 else 4)
    if kind <= 1:
        return _random_string(rng)
    if kind == 2:
        return rng.choice([0, -7, 12345678901234567890, 1.5, -2.5e-8, 1e300, True, False, None])
    if kind == 3:
        return rng.choice(["asin", "brand", "categories", "'brand': 'x'", '"asin": "y"'])
    if kind == 4:
        return [f"B{rng.randint(0, 10**8):08d}" for _ in range(rng.randint(0, 30))]
    if kind <= 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_random_key(rng): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _random_key(rng: random.Random) -> str:
    return (
        rng.choice(["title", "brand", "asin", "categories", "related", "x"])
        if rng.random() < 0.4
        else _random_string(rng)
    )


def _random_record(rng: random.Random) -> dict[str, Any]:
    record: dict[str, Any] = {"asin": _random_string(rng)}
    for _ in range(rng.randint(0, 4)):
        key = _random_key(rng)
        if key not in ("asin", "brand", "categories"):
            record[key] = _random_value(rng)
    if rng.random() < 0.7:
        record["brand"] = _random_string(rng) if rng.random() < 0.9 else None
    if rng.random() < 0.8:
        record["categories"] = [
            [_random_string(rng) for _ in range(rng.randint(0, 4))]
            for _ in range(rng.randint(0, 3))
        ]
    items = list(record.items())
    rng.shuffle(items)
    return dict(items)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_repr_lines_equal_literal_eval(
    tmp_path: Path, seed: int, slow_lines: list[str]
) -> None:
    rng = random.Random(seed)
    lines = [repr(_random_record(rng)) for _ in range(300)]
    frame = read_amazon_meta(_write(tmp_path / "meta.json", lines))
    assert _rows(frame) == [_reference(line) for line in lines]
    assert len(slow_lines) < len(lines) // 2  # the comparison exercised the fast path


_MUTATIONS = [
    "'",
    '"',
    "\\",
    ",",
    "]",
    "}",
    "[",
    "{",
    " ",
    ":",
    "0",
    "e",
    "-",
    ".",
    "T",
    "\t",
    "x",
    "'asin': 'dup', ",
    "'brand': 1, ",
    "None",
]


def _mutate(line: str, rng: random.Random) -> str:
    at = rng.randrange(len(line) + 1)
    action = rng.random()
    if action < 0.3:
        return line[:at] + line[at + 1 :]
    if action < 0.5:
        return line[:at] + rng.choice(_MUTATIONS) + line[at + 1 :]
    return line[:at] + rng.choice(_MUTATIONS) + line[at:]


def _reference_or_error(line: str) -> Row | None:
    """The reference row, or None where the reader must raise a DataError."""
    try:
        record = _literal_eval(line)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("asin"), str):
        return None
    brand, categories = record.get("brand"), record.get("categories")
    if brand is not None and not isinstance(brand, str):
        return None
    if categories is not None and not (
        isinstance(categories, list)
        and all(isinstance(p, list) and all(isinstance(c, str) for c in p) for p in categories)
    ):
        return None
    return record["asin"], brand, [] if categories is None else categories


def test_damaged_lines_are_rejected_exactly_when_python_rejects(tmp_path: Path) -> None:
    rng = random.Random(7)
    base = [repr(_random_record(rng)) for _ in range(40)] + TRICKY
    path = tmp_path / "meta.json"
    accepted = rejected = 0
    for _ in range(400):
        line = _mutate(rng.choice(base), rng)
        if not line.strip(" \t") or "\n" in line or "\r" in line:
            continue
        expected = _reference_or_error(line)
        _write(path, ["{'asin': 'ok'}", line])
        if expected is None:
            with pytest.raises(DataError, match=":2:"):
                read_amazon_meta(path)
            rejected += 1
        else:
            assert _rows(read_amazon_meta(path)) == [("ok", None, []), expected], line
            accepted += 1
    assert accepted > 50 and rejected > 50


# -- files: gzip, line endings, batches ---------------------------------------------------


def test_gzip_equals_plain(tmp_path: Path) -> None:
    lines = [repr(_random_record(random.Random(i))) for i in range(50)] + TRICKY
    plain = _write(tmp_path / "meta.json", lines)
    packed = tmp_path / "meta.json.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_amazon_meta(packed).equals(read_amazon_meta(plain))
    assert read_amazon_meta(packed).height == len(lines)


def test_truncated_gzip_is_a_data_error(tmp_path: Path) -> None:
    packed = gzip.compress("".join(line + "\n" for line in TRICKY * 20).encode())
    path = tmp_path / "meta_Beauty.json.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"meta_Beauty\.json\.gz.*truncated or corrupt gzip"):
        read_amazon_meta(path)


def test_blank_lines_skipped_crlf_and_no_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_bytes(
        b"{'asin': 'a'}\r\n\r\n  \t\n{'asin': 'b', 'brand': 'x\\r'}\r\n\n{'asin': 'c'}"
    )
    assert _rows(read_amazon_meta(path)) == [("a", None, []), ("b", "x\r", []), ("c", None, [])]


def test_empty_file(tmp_path: Path) -> None:
    frame = read_amazon_meta(_write(tmp_path / "meta.json", []))
    assert frame.height == 0 and frame.columns == ["asin", "brand", "categories"]


def test_many_batches_keep_order_and_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(amazon_meta, "_BATCH_BYTES", 256)
    rng = random.Random(3)
    lines = [repr(_random_record(rng)) for _ in range(200)]
    path = _write(tmp_path / "meta.json", lines)
    assert _rows(read_amazon_meta(path)) == [_reference(line) for line in lines]
    _write(path, [*lines[:150], "{'asin': 'x', ", *lines[150:]])
    with pytest.raises(DataError, match=":151:"):
        read_amazon_meta(path)


# -- errors -------------------------------------------------------------------------------


def test_malformed_line_names_file_line_and_text(tmp_path: Path) -> None:
    path = _write(tmp_path / "meta_Beauty.json", [TRICKY[0], TRICKY[1], "{'asin': 'x', "])
    with pytest.raises(DataError) as info:
        read_amazon_meta(path)
    message = str(info.value)
    assert "meta_Beauty.json:3:" in message
    assert "{'asin': 'x', " in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("['asin', 'x']", "found a list"),
        ("{'title': 'no asin'}", "found no 'asin'"),
        ("{'asin': 12}", "found 'asin' 12"),
        ("{'asin': None}", "found 'asin' None"),
        ("{'asin': 'a', 'brand': 12}", "'brand' to be a string"),
        ("{'asin': 'a', 'brand': ['x']}", "'brand' to be a string"),
        ("{'asin': 'a', 'categories': 'Beauty'}", "'categories' to be a list of lists"),
        ("{'asin': 'a', 'categories': ['Beauty']}", "'categories' to be a list of lists"),
        ("{'asin': 'a', 'categories': [[1]]}", "'categories' to be a list of lists"),
        ("{'asin': 'a', 'x': null}", "invalid syntax"),
        ("{'asin': 'a', 'x': true}", "invalid syntax"),
        ('{"asin": "a", "x": [1 2]}', "invalid syntax"),
        ("{'asin': 'a'} {'asin': 'b'}", "invalid syntax"),
        ("{'asin': 'a', 'x': " + "[" * 250 + "]" * 250 + "}", "invalid syntax"),
    ],
)
def test_lines_python_rejects_are_data_errors(tmp_path: Path, line: str, expected: str) -> None:
    path = _write(tmp_path / "meta.json", ["{'asin': 'fine'}", line])
    with pytest.raises(DataError, match=":2:") as info:
        read_amazon_meta(path)
    assert expected in str(info.value)


def test_json_lookalike_numbers_python_accepts(tmp_path: Path) -> None:
    """Deep but legal nesting and long numbers: Python decides, and accepts them."""
    lines = [
        "{'asin': 'a', 'x': " + "[" * 150 + "]" * 150 + "}",
        "{'asin': 'b', 'x': " + "9" * 100 + ", 'brand': 'B'}",
    ]
    assert _rows(read_amazon_meta(_write(tmp_path / "meta.json", lines))) == [
        ("a", None, []),
        ("b", "B", []),
    ]


def test_surrogate_pairs_are_joined_lone_surrogates_rejected(tmp_path: Path) -> None:
    """Python 2 wrote non-BMP characters as surrogate pairs; UTF-8 text cannot hold halves."""
    path = _write(
        tmp_path / "meta.json",
        [
            "{'asin': 'a', 'brand': 'smile \\ud83d\\ude00', 'categories': [['\\U0001f600']]}",
            "{'asin': 'b', 'brand': 'half \\ud83d'}",
        ],
    )
    with pytest.raises(DataError, match=":2: expected text, found a lone surrogate"):
        read_amazon_meta(path)
    _write(path, path.read_text().splitlines()[:1])
    assert _rows(read_amazon_meta(path)) == [("a", "smile \U0001f600", [["\U0001f600"]])]


def test_non_utf8_line_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_bytes(b"{'asin': 'a'}\n{'asin': 'b'}\n{'asin': 'caf\xe9'}\n{'asin': 'd'}\n")
    with pytest.raises(DataError, match=r"meta\.json:3: not UTF-8"):
        read_amazon_meta(path)


def test_first_error_in_the_file_wins(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_bytes(b"{'asin': 'a'}\n{'asin': }\n{'asin': '\xff'}\n")
    with pytest.raises(DataError, match=":2:"):
        read_amazon_meta(path)


# -- item attributes ----------------------------------------------------------------------


def test_item_attributes_s3rec_definition() -> None:
    meta = pl.DataFrame(
        {
            "asin": ["i1", "i2", "i3", "i4", "i2"],
            "brand": ["Nivea", None, "  ", "Face", "Olay"],
            "categories": [
                [["Beauty", "Skin Care", "Face"], ["Beauty", "Makeup", "Face"], ["Beauty"]],
                [["Beauty", "Old"]],
                [["Beauty", "Hair Care"], []],
                [["Beauty", "Skin Care", "Face"], ["Beauty", "Nivea"]],
                [["Beauty", "Fragrance", "Olay"]],
            ],
        },
        schema={"asin": pl.Utf8, "brand": pl.Utf8, "categories": pl.List(pl.List(pl.Utf8))},
    )
    got = item_attributes(meta)
    assert got.schema == pl.Schema({"asin": pl.Utf8, "attribute": pl.Utf8})
    assert got.rows() == [
        ("i1", "Nivea"),
        ("i1", "Skin Care"),
        ("i1", "Face"),
        ("i1", "Makeup"),
        ("i3", "Hair Care"),  # blank brand skipped
        ("i4", "Face"),
        ("i4", "Skin Care"),
        ("i4", "Nivea"),  # brand 'Face' = category 'Face'
        ("i2", "Olay"),
        ("i2", "Fragrance"),  # a repeated asin keeps its last line
    ]


def test_item_attributes_from_a_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "meta.json", [TRICKY[0], TRICKY[1], TRICKY[9]])
    got = item_attributes(read_amazon_meta(path))
    assert got.rows() == [
        ("0205616461", "Nivea"),
        ("0205616461", "Skin Care"),
        ("0205616461", "Face"),
        ("0205616461", "Creams & Moisturizers"),
        ("0205616461", "Makeup"),
        ("A1", "L'Oreal"),
        ("A1", "Men's"),
    ]


@pytest.mark.parametrize("gz", [False, True])
def test_byte_order_mark_before_the_first_line(tmp_path: Path, gz: bool) -> None:
    data = b"\xef\xbb\xbf{'asin': 'a', 'brand': 'x'}\n{'asin': 'b'}\n"
    path = tmp_path / ("meta.json.gz" if gz else "meta.json")
    path.write_bytes(gzip.compress(data) if gz else data)
    assert _rows(read_amazon_meta(path)) == [("a", "x", []), ("b", None, [])]
