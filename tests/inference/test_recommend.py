"""`seqbench recommend`: what it writes, that it ranks as evaluation does, and its errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seqbench.data.dataset import Dataset
from seqbench.engine.metrics import hit_rate, ndcg
from seqbench.runs.portable import RUN_DATASET_DIR
from tests.conftest import Cli

FIXTURE_RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs-0.1.0"


def test_history_test_reproduces_the_recorded_full_test_metrics(cli: Cli, trained_run: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "top.csv"
    result = cli("recommend", str(trained_run), "--history", "test", "--k", "20",
                 "--out", str(out))
    assert result.code == 0, result.err
    written = pl.read_csv(out)
    dataset = Dataset.load(trained_run / RUN_DATASET_DIR)
    users = np.flatnonzero(dataset.has_holdout)
    original_items = dataset.item_table()["original"].to_numpy()
    targets = pl.DataFrame({"user": dataset.user_table()["original"].to_numpy()[users],
                            "target": original_items[dataset.test_targets[users] - 1]})
    # repeat consumption is in this data: the held-out target must stay a candidate
    assert any(dataset.test_targets[u] in dataset.sequence(u)[:-1] for u in users)
    hits = written.join(targets, on="user").filter(pl.col("item") == pl.col("target"))
    ranks = np.full(len(users), 21)
    position = dict(zip(targets["user"].to_list(), range(len(users)), strict=True))
    for user, rank in hits.select("user", "rank").iter_rows():
        ranks[position[user]] = rank
    recorded = json.loads((trained_run / "summary.json").read_text())["test"]["full"]
    for k in (5, 10, 20):
        assert hit_rate(ranks, k) == recorded[f"HR@{k}"]
        assert ndcg(ranks, k) == recorded[f"NDCG@{k}"]
    assert written["user"].n_unique() == len(users)
    assert written.group_by("user").len()["len"].max() == 20


def test_history_all_excludes_everything_seen_unless_asked(cli: Cli, trained_run: Path,
                                                           tmp_path: Path) -> None:
    dataset = Dataset.load(trained_run / RUN_DATASET_DIR)
    original = dataset.item_table()["original"].to_numpy()
    seen = {uid: set(original[dataset.sequence(row) - 1].tolist())
            for row, uid in enumerate(dataset.user_table()["original"].to_list())}
    overlaps = {}
    for flag in ("--exclude-seen", "--include-seen"):
        out = tmp_path / f"top{flag}.parquet"
        assert cli("recommend", str(trained_run), flag, "--out", str(out)).code == 0
        frame = pl.read_parquet(out)
        assert frame.columns == ["user", "rank", "item", "score"]
        assert frame["user"].n_unique() == dataset.num_users
        assert (frame.group_by("user").agg(pl.col("score").diff().max())["score"] <= 0).all()
        overlaps[flag] = sum(item in seen[user] for user, item in
                             frame.select("user", "item").iter_rows())
    assert overlaps["--exclude-seen"] == 0
    assert overlaps["--include-seen"] > 0


def test_output_formats_hold_the_same_rows(cli: Cli, trained_run: Path, tmp_path: Path) -> None:
    frames = []
    for suffix in (".csv", ".parquet", ".jsonl"):
        out = tmp_path / f"top{suffix}"
        assert cli("recommend", str(trained_run), "--user", "3", "--user", "5", "--k", "4",
                   "--out", str(out)).code == 0
        frames.append({".csv": pl.read_csv, ".parquet": pl.read_parquet,
                       ".jsonl": pl.read_ndjson}[suffix](out))
    for frame in frames[1:]:
        assert frame.select("user", "rank", "item").equals(frames[0].select("user", "rank",
                                                                            "item"))
        assert np.allclose(frame["score"].to_numpy(), frames[0]["score"].to_numpy())
    assert frames[0]["user"].to_list() == [3] * 4 + [5] * 4
    assert frames[0]["rank"].to_list() == [1, 2, 3, 4] * 2


def test_a_copied_run_recommends_the_same(cli: Cli, trained_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / trained_run.name
    shutil.copytree(trained_run, copy)
    outs = []
    for run in (trained_run, copy):
        outs.append(tmp_path / f"{len(outs)}.parquet")
        assert cli("recommend", str(run), "--out", str(outs[-1])).code == 0
    assert pl.read_parquet(outs[0]).equals(pl.read_parquet(outs[1]))


def test_new_histories_from_a_text_file_and_a_table(cli: Cli, trained_run: Path,
                                                    tmp_path: Path) -> None:
    text = tmp_path / "histories.txt"
    text.write_text("alice 1 2 3 nope\nbob 5 999999\n")
    table = tmp_path / "histories.csv"
    # users in the order they first appear, each one's items by ts
    table.write_text("user,item,ts\nalice,3,30\nbob,999999,9\nalice,1,10\nbob,5,1\n"
                     "alice,2,20\nalice,nope,40\n")
    frames = []
    for path in (text, table):
        out = tmp_path / f"{path.stem}-{path.suffix[1:]}.csv"
        result = cli("recommend", str(trained_run), "--histories", str(path), "--k", "3",
                     "--out", str(out))
        assert result.code == 0, result.err
        assert "2 of 6 history items are not in the run's dataset" in result.err
        frames.append(pl.read_csv(out))
    assert frames[0].equals(frames[1])
    assert frames[0]["user"].to_list() == ["alice"] * 3 + ["bob"] * 3
    assert not set(frames[0].filter(pl.col("user") == "alice")["item"]) & {1, 2, 3}


def test_the_terminal_table_shows_a_few_users(cli: Cli, trained_run: Path) -> None:
    result = cli("recommend", str(trained_run), "--k", "2")
    assert result.code == 0, result.err
    assert f"top-2 of run {trained_run.name}; showing 5 of 800 users" in result.out
    assert result.out.count("│    2 │") == 5


def _one_line_error(cli: Cli, *args: str) -> str:
    result = cli("recommend", *args)
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    return lines[0]


@pytest.mark.parametrize(("fixture", "fragment"), [
    ("20261203-081255-synthetic-sasrec-ce-s0-387b", "the run failed"),
    ("20261203-081259-synthetic-s3rec_pretrain-r4-s0-77dd", "fine-tune it first"),
])
def test_runs_that_cannot_recommend(cli: Cli, tmp_path: Path, fixture: str,
                                    fragment: str) -> None:
    out = tmp_path / "top.csv"
    assert fragment in _one_line_error(cli, str(FIXTURE_RUNS / fixture), "--out", str(out))
    assert not out.exists()


def test_a_run_recorded_before_runs_kept_their_dataset(cli: Cli, trained_run: Path,
                                                       tmp_path: Path) -> None:
    """Such a run uses the dataset cache its config.json names, while it is unchanged."""
    copy = tmp_path / trained_run.name
    shutil.copytree(trained_run, copy)
    cache_entry = tmp_path / "cache-entry"
    (copy / RUN_DATASET_DIR).rename(cache_entry)
    config = json.loads((copy / "config.json").read_text())
    config["resolved"]["dataset_path"] = str(cache_entry)
    (copy / "config.json").write_text(json.dumps(config))
    assert cli("recommend", str(copy), "--user", "3").code == 0
    shutil.rmtree(cache_entry)
    assert "recorded before runs kept their data" in _one_line_error(cli, str(copy))
    (copy / "best.pt").unlink()
    (copy / RUN_DATASET_DIR).mkdir()
    shutil.copytree(trained_run / RUN_DATASET_DIR, copy / RUN_DATASET_DIR, dirs_exist_ok=True)
    assert "no best.pt" in _one_line_error(cli, str(copy))


def test_a_run_still_being_written(cli: Cli, trained_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / trained_run.name
    shutil.copytree(trained_run, copy)
    (copy / "summary.json").unlink()
    events = (copy / "events.jsonl").read_text().splitlines()
    (copy / "events.jsonl").write_text("\n".join(e for e in events if '"end"' not in e) + "\n")
    assert "only a finished run" in _one_line_error(cli, str(copy))


@pytest.mark.parametrize(("args", "fragment"), [
    (["--user", "no-such-user"], "user 'no-such-user' is not in the run's dataset"),
    (["--k", "0"], "--k must be at least 1"),
    (["--k", "201"], "between 1 and the catalogue's 200 items, got 201"),
    (["--out", "top.txt"], "unknown suffix '.txt'"),
    (["--out", "/proc/no/top.csv"], "cannot write in"),
    (["--histories", "EMPTY"], "no histories in the file"),
    (["--users", "EMPTY"], "no user ids in the file"),
    (["--histories", "EMPTY", "--user", "3"], "cannot be combined"),
])
def test_bad_input(cli: Cli, trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   args: list[str], fragment: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "EMPTY").write_text("\n")
    assert fragment in _one_line_error(cli, str(trained_run), *args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["EMPTY"]  # nothing written


def test_an_existing_out_is_kept_without_force(cli: Cli, trained_run: Path,
                                               tmp_path: Path) -> None:
    out = tmp_path / "top.csv"
    out.write_text("mine\n")
    assert "--force replaces it" in _one_line_error(cli, str(trained_run), "--out", str(out))
    assert out.read_text() == "mine\n"
    assert cli("recommend", str(trained_run), "--out", str(out), "--force").code == 0
    assert pl.read_csv(out).columns == ["user", "rank", "item", "score"]
