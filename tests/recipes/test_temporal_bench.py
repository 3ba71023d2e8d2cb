"""A bench on the temporal split end to end: recorded and compared with its split named, and
never grouped or compared with a leave-one-out run of the same data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.conftest import Cli, write

TINY = ["--dim", "16", "--layers", "1", "--heads", "1", "--max-len", "10", "--epochs", "2",
        "--batch-size", "64", "--k", "5,10"]


def events(path: Path) -> Path:
    """Users who keep coming back over the whole period, so each window has users."""
    rng = np.random.default_rng(0)
    lines = ["user,item,ts"]
    for user in range(150):
        times = np.sort(rng.choice(10_000, size=int(rng.integers(8, 20)), replace=False))
        items = rng.choice(60, size=len(times), replace=False)
        lines += [f"u{user},i{item},{t}" for item, t in zip(items, times, strict=True)]
    return write(path, "\n".join(lines) + "\n")


def test_a_temporal_bench_is_recorded_and_compared_apart(cli: Cli, tmp_path: Path) -> None:
    source = events(tmp_path / "events.csv")
    data = ["--dataset", "generic", "--source", str(source), "--time-col", "ts",
            "--data-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "runs")]
    temporal = cli("bench", *data, *TINY, "--split", "temporal", "--valid-frac", "0.15",
                   "--test-frac", "0.15")
    assert temporal.code == 0, temporal.err
    assert "temporal split" in temporal.out
    loo = cli("bench", *data, *TINY)
    assert loo.code == 0, loo.err
    summaries = {json.loads(p.read_text())["split"]: json.loads(p.read_text())
                 for p in (tmp_path / "runs").glob("*/summary.json")}
    assert set(summaries) == {"loo", "temporal"}
    assert "Recall@10" in summaries["temporal"]["test"]["full"]
    assert "Recall@10" not in summaries["loo"]["test"]["full"]  # loo records are unchanged
    result = cli("compare", "--runs-dir", str(tmp_path / "runs"), "--group-by", "dataset,loss",
                 "--baseline", "ce", "--format", "json")
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert sorted((row["split"], row["n"]) for row in rows) == [("loo", 1), ("temporal", 1)]
