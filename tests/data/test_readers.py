"""Each reader on small fixture files: canonical columns, values, and source order."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from seqbench.data.readers import amazon, generic, movielens, s3rec
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
