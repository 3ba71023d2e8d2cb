"""`seqbench prep` end to end: statistics, the cache (reuse, keys, atomicity), real data."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

import seqbench.data.prep as prep_module
import seqbench.fsutil as fsutil
from seqbench.config import DataConfig
from seqbench.data.dataset import Dataset
from seqbench.data.prep import prepare
from seqbench.errors import SeqbenchError
from tests.conftest import SHARED_DATA, cache_entries, needs_shared_data, write

ML_HEADER = "userId,movieId,rating,timestamp\n"


def ml_ratings(tmp_path: Path, n_users: int = 30, n_items: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = [
        f"{u},{rng.integers(1, n_items + 1) * 10},4.0,{1000 + t}"
        for u in range(1, n_users + 1)
        for t in range(int(rng.integers(2, 9)))
    ]
    return write(tmp_path / "ml" / "ratings.csv", ML_HEADER + "\n".join(lines) + "\n")


def test_prep_prints_statistics_and_writes_a_loadable_cache(
    cli, cache: Path, tmp_path: Path
) -> None:
    source = ml_ratings(tmp_path)
    result = cli(
        "prep", "--dataset", "ml-latest-small", "--source", str(source), "--data-dir", str(cache)
    )
    assert result.code == 0, result.err
    [entry] = cache_entries(cache)
    ds = Dataset.load(entry)
    for label, value in (
        ("users", ds.num_users),
        ("items", ds.num_items),
        ("interactions", len(ds.items)),
    ):
        assert label in result.out and f"{value:,}" in result.out
    assert "min user 3, min item 3" in result.out
    assert ds.meta["sources"]["ratings"]["sha256"]
    assert (np.diff(ds.offsets) >= 3).all()  # the default 3-core held


def test_same_inputs_reuse_the_cache_without_recomputing(
    cli, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = ml_ratings(tmp_path)
    args = ("prep", "--dataset", "ml-latest-small", "--source", str(source), "--data-dir",
            str(cache))
    assert cli(*args).code == 0
    [entry] = cache_entries(cache)
    stamp = (entry / "meta.json").stat().st_mtime_ns

    def no_rebuild(*_a: object, **_k: object) -> None:
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(prep_module, "build", no_rebuild)
    second = cli(*args)
    assert second.code == 0, second.err
    assert "reused the cache" in second.out
    assert cache_entries(cache) == [entry]
    assert (entry / "meta.json").stat().st_mtime_ns == stamp


def test_different_options_or_content_make_a_different_entry(cache: Path, tmp_path: Path) -> None:
    source = ml_ratings(tmp_path)
    base = DataConfig(dataset="ml-latest-small", source=[str(source)], data_dir=str(cache))
    first = prepare(base).dataset.path
    other_filter = prepare(DataConfig(**{**base.__dict__, "min_item": 2})).dataset.path
    assert other_filter != first
    with source.open("a") as f:  # same path, new content
        f.write("99,10,4.0,5000\n99,20,4.0,5001\n99,30,4.0,5002\n")
    changed = prepare(base).dataset.path
    assert changed not in (first, other_filter)
    assert len(cache_entries(cache)) == 3


def test_interrupted_build_leaves_nothing(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = ml_ratings(tmp_path)

    def interrupted(prepared: object, directory: Path) -> None:
        (directory / "sequences.npy").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(prep_module, "write_arrays", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare(DataConfig(dataset="ml-latest-small", source=[str(source)], data_dir=str(cache)))
    assert cache_entries(cache) == []


def test_full_disk_while_writing_is_one_error_and_leaves_nothing(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(prepared: object, directory: Path) -> None:
        (directory / "sequences.npy").write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(prep_module, "write_arrays", disk_full)
    source = ml_ratings(tmp_path)
    with pytest.raises(SeqbenchError, match="cannot write the prepared dataset") as caught:
        prepare(DataConfig(dataset="ml-latest-small", source=[str(source)], data_dir=str(cache)))
    assert os.strerror(errno.ENOSPC) in str(caught.value)
    assert cache_entries(cache) == []


def test_source_directory_is_searched_for_the_role_files(cache: Path, tmp_path: Path) -> None:
    source = ml_ratings(tmp_path)
    ds = prepare(
        DataConfig(dataset="ml-latest-small", source=[str(source.parent)], data_dir=str(cache))
    ).dataset
    assert ds.meta["sources"]["ratings"]["path"] == str(source.resolve())


def test_single_source_file_is_read_whatever_its_name(cli, cache: Path, tmp_path: Path) -> None:
    renamed = ml_ratings(tmp_path).rename(tmp_path / "myratings.csv")
    result = cli(
        "prep", "--dataset", "ml-latest-small", "--source", str(renamed), "--data-dir", str(cache)
    )
    assert result.code == 0, result.err
    [entry] = cache_entries(cache)
    assert Dataset.load(entry).meta["sources"]["ratings"]["path"] == str(renamed.resolve())


def test_source_directory_ignores_hidden_files(cache: Path, tmp_path: Path) -> None:
    write(tmp_path / "log" / ".DS_Store", b"\x00\x01")
    events = write(tmp_path / "log" / "events.csv", "user,item\nu,a\nu,b\n")
    ds = prepare(
        DataConfig(dataset="generic", source=[str(events.parent)], data_dir=str(cache))
    ).dataset
    assert ds.meta["sources"]["interactions"]["path"] == str(events.resolve())


def test_earlier_download_is_found_next_to_its_archive(cache: Path, tmp_path: Path) -> None:
    raw = cache / "raw" / "ml-latest-small"
    ratings = ml_ratings(tmp_path).rename(write(raw / "ratings.csv", ""))
    write(raw / "ml-latest-small.zip", b"PK\x05\x06" + bytes(18))
    write(raw / "downloads.json", "{}\n")
    ds = prepare(DataConfig(dataset="ml-latest-small", data_dir=str(cache))).dataset
    assert ds.meta["sources"]["ratings"]["path"] == str(ratings.resolve())


def test_read_only_cache_directory_is_one_error(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests run as root, who may write anywhere: stand in for a directory we may not write."""
    monkeypatch.setattr(fsutil.os, "access", lambda path, mode: Path(path) != cache)
    with pytest.raises(SeqbenchError, match=r"cannot write in it \(Permission denied\)") as caught:
        prepare(DataConfig(dataset="synthetic", items=50, data_dir=str(cache)))
    assert str(caught.value).startswith(f"{cache}: cannot be used as the cache directory")
    assert list(cache.iterdir()) == []


def test_read_only_cache_directory_still_serves_what_it_holds(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = DataConfig(dataset="ml-latest-small", source=[str(ml_ratings(tmp_path))])
    config.data_dir = str(cache)
    first = prepare(config)
    monkeypatch.setattr(fsutil.os, "access", lambda path, mode: False)
    again = prepare(config)
    assert again.reused and again.dataset.path == first.dataset.path


def test_s3rec_fixture_keeps_the_authors_ids(cache: Path, tmp_path: Path) -> None:
    write(tmp_path / "s3" / "Toy.txt", "1 2 3 4 5\n2 3 4 5 1\n3 1 2 3 4\n")
    write(
        tmp_path / "s3" / "Toy_item2attributes.json",
        '{"1": [1], "2": [2, 1], "3": [2], "4": [3], "5": [3, 1]}',
    )
    ds = prepare(
        DataConfig(dataset="s3rec", source=[str(tmp_path / "s3")], data_dir=str(cache))
    ).dataset
    assert ds.sequence(0).tolist() == [2, 3, 4, 5]
    assert ds.item_attributes(2).tolist() == [2, 1]
    assert (ds.num_users, ds.num_items, ds.num_attributes) == (3, 5, 3)


@needs_shared_data("s3rec", "Beauty.txt")
def test_real_s3rec_beauty_statistics(cli, cache: Path) -> None:
    result = cli(
        "prep", "--dataset", "s3rec", "--source", str(SHARED_DATA / "s3rec"), "--data-dir",
        str(cache)
    )
    assert result.code == 0, result.err
    stats = Dataset.load(cache_entries(cache)[0]).meta["stats"]
    assert (stats["users"], stats["items"], stats["interactions"], stats["attributes"]) == (
        22_363,
        12_101,
        198_502,
        637,
    )
    assert "22,363" in result.out and "637" in result.out


@needs_shared_data("movielens", "ml-latest-small", "ratings.csv")
@pytest.mark.parametrize(("k", "expected"), [(3, (610, 4_980, 94_794)), (5, (610, 3_650, 90_274))])
def test_real_ml_latest_small_kcore(cache: Path, k: int, expected: tuple[int, int, int]) -> None:
    ds = prepare(
        DataConfig(
            dataset="ml-latest-small",
            min_user=k,
            min_item=k,
            source=[str(SHARED_DATA / "movielens" / "ml-latest-small")],
            data_dir=str(cache),
        )
    ).dataset
    assert (ds.num_users, ds.num_items, len(ds.items)) == expected
