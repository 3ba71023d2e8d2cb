"""Each reader on small fixture files: canonical columns, values, and source order."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from seqbench.data.readers import amazon, generic, movielens, s3rec, textfiles
from seqbench.errors import DataError
from tests.conftest import write


def rows(frame: pl.DataFrame) -> list[tuple]:
    return frame.select("user", "item", "ts").rows()


def test_movielens_csv(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n1,1029,3.0,1260759179\n"
        "2,10,4.0,835355493\n",
    )
    assert rows(movielens.read_ratings_csv(path).interactions) == [
        (1, 31, 1260759144),
        (1, 1029, 1260759179),
        (2, 10, 835355493),
    ]


def test_movielens_dat_double_colon(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    assert rows(movielens.read_ratings_dat(path).interactions) == [
        (1, 1193, 978300760),
        (1, 661, 978302109),
    ]


def test_movielens_u_data_tabs(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    assert rows(movielens.read_u_data(path).interactions) == [
        (196, 242, 881250949),
        (186, 302, 891717742),
    ]


def test_amazon_ratings_without_header(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ratings_Beauty.csv",
        "A39HTATAQ9V7YF,0205616461,5.0,1369699200\nA3JM6GV9MNOF9X,0558925278,3.0,1355443200\n",
    )
    assert rows(amazon.read_ratings_csv(path).interactions) == [
        ("A39HTATAQ9V7YF", "0205616461", 1369699200),
        ("A3JM6GV9MNOF9X", "0558925278", 1355443200),
    ]


def test_amazon_ratings_header_and_trailing_comma(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ratings_Beauty.csv",
        "UserId,ProductId,Rating,Timestamp,\nA39HTATAQ9V7YF,0205616461,5.0,1369699200,\n"
        "A3JM6GV9MNOF9X,0558925278,3.0,1355443200,\n",
    )
    assert rows(amazon.read_ratings_csv(path).interactions) == [
        ("A39HTATAQ9V7YF", "0205616461", 1369699200),
        ("A3JM6GV9MNOF9X", "0558925278", 1355443200),
    ]


def test_amazon_ratings_header_without_trailing_comma(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ratings_Beauty.csv", "UserId,ProductId,Rating,Timestamp\nA1,P1,5.0,10\n"
    )
    assert rows(amazon.read_ratings_csv(path).interactions) == [("A1", "P1", 10)]


REVIEWS = (
    '{"reviewerID": "A1", "asin": "B01", "reviewerName": "x", "overall": 5.0, '
    '"reviewText": "ok", "unixReviewTime": 1400000000, "helpful": [0, 0]}\n'
    '{"reviewerID": "A2", "asin": "B02", "unixReviewTime": 1300000000}\n'
)


@pytest.mark.parametrize("gz", [False, True])
def test_amazon_reviews_json_lines(tmp_path: Path, gz: bool) -> None:
    name = "reviews_Beauty_5.json" + (".gz" if gz else "")
    path = write(tmp_path / name, REVIEWS, gz=gz)
    assert rows(amazon.read_reviews(path)) == [("A1", "B01", 1400000000), ("A2", "B02", 1300000000)]


def test_s3rec_sequences_and_attributes(tmp_path: Path) -> None:
    seqs = write(tmp_path / "Beauty.txt", "1 3 1 2\n2 2 3\n")
    attrs = write(tmp_path / "Beauty_item2attributes.json", '{"1": [1, 2], "2": [2], "3": []}')
    raw = s3rec.read_s3rec(seqs, attrs)
    assert rows(raw.interactions) == [(1, 3, 0), (1, 1, 1), (1, 2, 2), (2, 2, 0), (2, 3, 1)]
    assert raw.attributes is not None
    assert raw.attributes.rows() == [(1, 1), (1, 2), (2, 2)]


def test_generic_csv_with_named_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "who,what,when,extra\nu1,i9,20,a\nu2,i3,10,b\n")
    raw = generic.read_generic(path, "who", "what", "when")
    assert rows(raw.interactions) == [("u1", "i9", 20), ("u2", "i3", 10)]


def test_generic_without_time_uses_file_order(tmp_path: Path) -> None:
    path = write(tmp_path / "log.tsv", "user\titem\nu1\ti9\nu1\ti3\n")
    raw = generic.read_generic(path, "user", "item", None)
    assert rows(raw.interactions) == [("u1", "i9", 0), ("u1", "i3", 1)]


def test_generic_parquet_and_jsonl(tmp_path: Path) -> None:
    frame = pl.DataFrame({"u": [5, 6], "i": [7, 8], "t": [100, 50]})
    frame.write_parquet(tmp_path / "log.parquet")
    frame.write_ndjson(tmp_path / "log.jsonl")
    expected = [(5, 7, 100), (6, 8, 50)]
    assert (
        rows(generic.read_generic(tmp_path / "log.parquet", "u", "i", "t").interactions) == expected
    )
    assert (
        rows(generic.read_generic(tmp_path / "log.jsonl", "u", "i", "t").interactions) == expected
    )


def test_generic_datetime_text_keeps_order(tmp_path: Path) -> None:
    path = write(
        tmp_path / "log.csv", "user,item,time\nu,a,2024-01-02 10:00:00\nu,b,2024-01-01 09:00:00\n"
    )
    ts = generic.read_generic(path, "user", "item", "time").interactions["ts"].to_list()
    assert ts[0] > ts[1]


def test_generic_missing_column_names_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "who,what\nu1,i9\n")
    with pytest.raises(DataError, match=r"no column 'user'.*who, what"):
        generic.read_generic(path, "user", "item", None)


BOM = "\ufeff"  # what Excel's "CSV UTF-8" puts before the header


@pytest.mark.parametrize("gz", [False, True])
def test_movielens_csv_with_byte_order_mark(tmp_path: Path, gz: bool) -> None:
    path = write(
        tmp_path / ("ratings.csv.gz" if gz else "ratings.csv"),
        BOM + "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n",
        gz=gz,
    )
    assert rows(movielens.read_ratings_csv(path).interactions) == [(1, 31, 1260759144)]


@pytest.mark.parametrize(
    "body",
    [
        "UserId,ProductId,Rating,Timestamp,\nA1,P1,5.0,10,\n",
        "UserId,ProductId,Rating,Timestamp\nA1,P1,5.0,10\n",
        "A1,P1,5.0,10\n",
    ],
    ids=["header-trailing-comma", "header", "no-header"],
)
def test_amazon_ratings_with_byte_order_mark(tmp_path: Path, body: str) -> None:
    path = write(tmp_path / "ratings_Beauty.csv", BOM + body)
    assert rows(amazon.read_ratings_csv(path).interactions) == [("A1", "P1", 10)]


@pytest.mark.parametrize(
    ("name", "body", "gz"),
    [
        ("log.csv", "who,what,when\nu1,i9,20\n", False),
        ("log.tsv.gz", "who\twhat\twhen\nu1\ti9\t20\n", True),
        ("log.jsonl", '{"who": "u1", "what": "i9", "when": 20}\n', False),
    ],
)
def test_generic_with_byte_order_mark(tmp_path: Path, name: str, body: str, gz: bool) -> None:
    path = write(tmp_path / name, BOM + body, gz=gz)
    assert rows(generic.read_generic(path, "who", "what", "when").interactions) == [
        ("u1", "i9", 20)
    ]


def test_s3rec_sequences_with_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path / "Beauty.txt", BOM + "1 3 1\n")
    assert rows(s3rec.read_sequences(path)) == [(1, 3, 0), (1, 1, 1)]


def test_bad_line_after_byte_order_mark_is_still_numbered(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", BOM + "userId,movieId,rating,timestamp\n1,x,2.5,1\n")
    with pytest.raises(DataError, match="movieId 'x' is not an integer") as caught:
        movielens.read_ratings_csv(path)
    assert caught.value.line_no == 2


@pytest.mark.parametrize(
    ("column", "line_no", "value"),
    [
        (["2020-01-01", "2020-01-02", "2020-01-03", "not-a-date"], 5, "not-a-date"),
        (["1", "2", "x", "4"], 4, "x"),  # numbers with one word: the word, not the first number
        (["soon", "2020-01-02"], 2, "soon"),
        (["2020-01-01", "17"], 3, "17"),
    ],
)
def test_generic_bad_time_value_is_named_with_its_line(
    tmp_path: Path, column: list[str], line_no: int, value: str
) -> None:
    body = "".join(f"u{n % 2},i{n},{t}\n" for n, t in enumerate(column))
    path = write(tmp_path / "log.csv", "user,item,time\n" + body)
    with pytest.raises(DataError) as caught:
        generic.read_generic(path, "user", "item", "time")
    error = caught.value
    assert (error.line_no, error.problem) == (
        line_no,
        f"column 'time' must hold numbers or dates, found {value!r}",
    )
    assert error.line == f"u{(line_no - 2) % 2},i{line_no - 2},{value}".encode()


def test_generic_bad_time_below_a_multiline_quoted_field(tmp_path: Path) -> None:
    path = write(
        tmp_path / "log.csv",
        'user,item,time,note\nu,a,2020-01-01,"two\nlines"\nu,b,never,\n',
    )
    with pytest.raises(DataError) as caught:
        generic.read_generic(path, "user", "item", "time")
    assert caught.value.line_no == 4 and "found 'never'" in str(caught.value)


def test_generic_bad_time_in_parquet_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pl.DataFrame({"u": ["a", "b"], "i": ["x", "y"], "t": ["2020-01-01", "later"]}).write_parquet(
        path
    )
    with pytest.raises(DataError, match=r"found 'later' \(row 2\)"):
        generic.read_generic(path, "u", "i", "t")


def test_generic_good_file_is_not_read_line_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_slow_pass(path: Path) -> None:
        raise AssertionError("the line-by-line pass is only for files known to be bad")

    monkeypatch.setattr(generic, "iter_lines", no_slow_pass, raising=False)
    monkeypatch.setattr(textfiles, "iter_lines", no_slow_pass)
    path = write(tmp_path / "log.csv", "user,item,time\nu,a,2020-01-02\nu,b,2020-01-01\n")
    ts = generic.read_generic(path, "user", "item", "time").interactions["ts"].to_list()
    assert ts[0] > ts[1]
