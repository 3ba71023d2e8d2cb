"""Bad input to `seqbench prep`: one clear error line, a non-zero exit, and nothing left behind."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.conftest import Cli, CliResult, cache_entries, write

HEADER = "userId,movieId,rating,timestamp\n"
GOOD = "1,31,2.5,1260759144\n1,1029,3.0,1260759179\n"


def assert_clean_failure(result: CliResult, cache: Path, *fragments: str) -> None:
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert cache_entries(cache) == []  # no cache entry, no staging directory


def prep(
    cli: Cli, cache: Path, dataset: str, *sources: Path, extra: tuple[str, ...] = ()
) -> CliResult:
    args = ["prep", "--dataset", dataset, "--data-dir", str(cache), *extra]
    for source in sources:
        args += ["--source", str(source)]
    return cli(*args)


def test_missing_file(cli, cache: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ratings.csv"
    assert_clean_failure(prep(cli, cache, "ml-20m", missing), cache, str(missing), "not found")


def test_unknown_dataset_lists_the_known_ones(cli, cache: Path) -> None:
    assert_clean_failure(
        prep(cli, cache, "ml-30m"), cache, "unknown dataset 'ml-30m'", "ml-20m", "beauty-5core"
    )


@pytest.mark.parametrize(
    ("body", "line_no", "shown", "problem"),
    [
        (
            GOOD + "1,2294,abc,1260759182\n",
            4,
            "1,2294,abc,1260759182",
            "rating 'abc' is not a number",
        ),
        (GOOD + "1,2294,2.0\n", 4, "1,2294,2.0", "found 3 fields"),
        (GOOD + "1,2294,2.0,1260759182,7\n", 4, "1,2294,2.0,1260759182,7", "found 5 fields"),
        ("userId,movieId,rating,timestamp\n1,,2.0,1260759182\n", 2, "1,,2.0", "an empty movieId"),
    ],
)
def test_malformed_line_names_file_line_and_shows_it(
    cli, cache: Path, tmp_path: Path, body: str, line_no: int, shown: str, problem: str
) -> None:
    path = write(tmp_path / "ratings.csv", HEADER + body if not body.startswith("userId") else body)
    result = prep(cli, cache, "ml-20m", path)
    assert_clean_failure(result, cache, f"{path}:{line_no}:", shown, problem)


def test_malformed_line_in_gzip_and_dat(cli, cache: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.dat", "1::1193::5::978300760\n1::661::x::978302109\n")
    assert_clean_failure(prep(cli, cache, "ml-1m", path), cache, f"{path}:2:", "1::661::x")


def test_wrong_column_set(cli, cache: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", "user,item,rating\n1,2,3\n")
    assert_clean_failure(
        prep(cli, cache, "ml-latest-small", path),
        cache,
        f"{path}:1:",
        "wrong columns",
        "userId,movieId,rating,timestamp",
    )


def test_wrong_keys_in_json_lines(cli, cache: Path, tmp_path: Path) -> None:
    reviews = write(
        tmp_path / "reviews_Beauty_5.json",
        '{"reviewerID": "A", "asin": "B", "unixReviewTime": 1}\n'
        '{"user": "A", "asin": "C", "unixReviewTime": 2}\n',
    )
    meta = write(tmp_path / "meta_Beauty.json", "{'asin': 'B'}\n")
    assert_clean_failure(
        prep(cli, cache, "beauty-5core", reviews, meta),
        cache,
        f"{reviews}:2:",
        "missing reviewerID",
    )


def test_truncated_gzip(cli, cache: Path, tmp_path: Path) -> None:
    data = gzip.compress((HEADER + GOOD * 200).encode())
    path = write(tmp_path / "ratings.csv.gz", data[: len(data) // 2])
    assert_clean_failure(
        prep(cli, cache, "ml-20m", path), cache, str(path), "truncated or corrupt gzip"
    )


def test_truncated_gzip_reviews(cli, cache: Path, tmp_path: Path) -> None:
    line = '{"reviewerID": "A", "asin": "B", "unixReviewTime": 1}\n'
    data = gzip.compress((line * 500).encode())
    reviews = write(tmp_path / "reviews_Beauty_5.json.gz", data[:-20])
    meta = write(tmp_path / "meta_Beauty.json", "{'asin': 'B'}\n")
    assert_clean_failure(
        prep(cli, cache, "beauty-5core", reviews, meta),
        cache,
        str(reviews),
        "truncated or corrupt gzip",
    )


def test_not_utf8(cli, cache: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "ratings_Beauty.csv", b"A1,P1,5.0,10\nA\xff2,P2,4.0,11\n")
    assert_clean_failure(prep(cli, cache, "beauty", path), cache, f"{path}:2:", "not UTF-8")


def test_filters_that_empty_the_dataset(cli, cache: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", HEADER + GOOD)
    assert_clean_failure(
        prep(cli, cache, "ml-20m", path, extra=("--min-user", "50")),
        cache,
        "no interactions left after filtering",
        "min_user=50",
    )


def test_empty_file(cli, cache: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", "")
    assert_clean_failure(prep(cli, cache, "ml-20m", path), cache, str(path), "empty")


def test_header_only(cli, cache: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", HEADER)
    assert_clean_failure(prep(cli, cache, "ml-20m", path), cache, str(path), "no interactions")


def test_negative_filter(cli, cache: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", HEADER + GOOD)
    assert_clean_failure(
        prep(cli, cache, "ml-20m", path, extra=("--min-item", "-1")),
        cache,
        "--min-item must be >= 0",
    )


def test_unknown_option_is_one_line(cli, cache: Path) -> None:
    assert_clean_failure(
        cli("prep", "--datset", "ml-20m", "--data-dir", str(cache)), cache,
        "No such option: --datset"
    )


def test_missing_sources_suggest_source_or_download(cli, cache: Path) -> None:
    assert_clean_failure(
        prep(cli, cache, "ml-20m"), cache, "ml-20m needs source files", "--source", "--download"
    )


def test_config_with_unknown_key(cli, cache: Path, tmp_path: Path) -> None:
    config = write(tmp_path / "bad.toml", '[data]\ndataset = "ml-20m"\nmin_users = 3\n')
    assert_clean_failure(
        cli("prep", "--config", str(config), "--data-dir", str(cache)), cache,
        "unknown key 'min_users'"
    )


def test_source_directory_without_the_expected_file_says_what_it_looked_for(
    cli, cache: Path, tmp_path: Path
) -> None:
    source = tmp_path / "downloads"
    write(source / "notes.txt", "userId,movieId\n1,2\n")
    result = prep(cli, cache, "ml-latest-small", source)
    assert_clean_failure(
        result, cache, f"{source}: no file named 'ratings.csv' in this directory", "notes.txt"
    )
    assert "wrong columns" not in result.err  # notes.txt was not parsed as the ratings


def test_source_directory_with_files_of_another_dataset(cli, cache: Path, tmp_path: Path) -> None:
    source = tmp_path / "amazon"
    write(source / "reviews_Beauty_5.json", '{"reviewerID": "A", "asin": "B"}\n')
    assert_clean_failure(
        prep(cli, cache, "beauty-5core", source),
        cache,
        f"{source}: no file matching 'meta_*.json' or 'meta_*.json.gz'",
        "found only reviews_Beauty_5.json",
    )


GENERIC_COLUMNS = ("--user-col", "u", "--item-col", "i", "--time-col", "t")


@pytest.mark.parametrize(
    ("name", "body", "line_no", "value"),
    [
        (
            "f.csv",
            "u,i,t\na,x,2020-01-01\na,y,2020-01-02\nb,x,2020-01-03\nb,y,not-a-date\n",
            5,
            "not-a-date",
        ),
        ("f.tsv", "u\ti\tt\na\tx\t2020-01-01 10:00:00\nb\ty\t01/02/2020\n", 3, "01/02/2020"),
        ("f.csv", "u,i,t\n" + "a,x,17\n" * 20_000 + "b,y,1.5e\n", 20_002, "1.5e"),
        (
            "f.jsonl",
            '{"u": "a", "i": "x", "t": "2020-01-01"}\n\n{"u": "b", "i": "y", "t": "soon"}\n',
            3,
            "soon",
        ),
    ],
)
def test_generic_bad_time_value_names_its_line_and_the_value(
    cli, cache: Path, tmp_path: Path, name: str, body: str, line_no: int, value: str
) -> None:
    path = write(tmp_path / name, body)
    result = prep(cli, cache, "generic", path, extra=GENERIC_COLUMNS)
    assert_clean_failure(
        result, cache, f"{path}:{line_no}: column 't' must hold numbers or dates, found {value!r}"
    )
    assert "text such as" not in result.err


@pytest.mark.parametrize("where", ["proc", "below_a_file", "env"])
def test_unusable_cache_directory_is_one_line(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    blocker = write(tmp_path / "file", "not a directory\n")
    directory = Path("/proc/x") if where != "below_a_file" else blocker / "sub"
    args = ["prep", "--dataset", "synthetic", "--items", "50", "--users", "60"]
    if where == "env":
        monkeypatch.setenv("SEQBENCH_CACHE", str(directory))
    else:
        args += ["--data-dir", str(directory)]
    result = cli(*args)
    reason = (
        f"{blocker} is a file, not a directory"
        if where == "below_a_file"
        else "cannot create directories in /proc"
    )
    assert_clean_failure(
        result, directory, f"{directory}: cannot be used as the cache directory", reason
    )
    assert ("(from $SEQBENCH_CACHE)" in result.err) == (where == "env")
    assert blocker.read_text() == "not a directory\n"  # nothing written over or next to it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_unusable_cache_directory_for_download_fails_before_any_request(
    cli, tmp_path: Path
) -> None:
    blocked = write(tmp_path / "file", "") / "cache"
    result = cli("prep", "--dataset", "ml-latest-small", "--download", "--data-dir", str(blocked))
    assert_clean_failure(result, blocked, f"{blocked}: cannot be used as the cache directory")


def test_unusable_cache_directory_in_bench(cli, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = cli(
        "bench",
        "--dataset",
        "synthetic",
        "--items",
        "50",
        "--users",
        "60",
        "--epochs",
        "1",
        "--data-dir",
        "/proc/x",
        "--runs-dir",
        str(runs),
    )
    assert_clean_failure(result, Path("/proc/x"), "/proc/x: cannot be used as the cache directory")
    assert not runs.exists() or not any(runs.iterdir())  # no run was recorded


def test_prepared_directory_blocked_by_a_file(cli, cache: Path) -> None:
    blocker = write(cache / "prepared", "")
    result = cli("prep", "--dataset", "synthetic", "--items", "50", "--data-dir", str(cache))
    assert_clean_failure(result, cache, f"{blocker}: cannot be used", "is a file, not a directory")
    assert sorted(p.name for p in cache.iterdir()) == ["prepared"]
