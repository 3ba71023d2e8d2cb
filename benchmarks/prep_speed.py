"""How fast is `seqbench prep`? An ML-20M-shaped file and the real files in ../shared/data.

Generates a `ratings.csv` with ML-20M's shape (20,000,263 rows, 138,493 users, 26,744 items,
every user >= 20 ratings, heavy-tailed popularity, sorted by user then movie as GroupLens
ships it), then times a cold `prep` (fresh cache) and a warm one (cache reuse) in fresh
processes, with their peak resident memory. Targets (issue 2): cold < 20 s, < 4 GiB.

    python benchmarks/prep_speed.py [--rows 20000263] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from _run import run_seqbench  # benchmarks/_run.py (scripts run from this folder)
from rich.console import Console
from rich.table import Table

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ML20M = {"rows": 20_000_263, "users": 138_493, "items": 26_744}


def ml20m_like(path: Path, rows: int, seed: int = 0) -> None:
    """Write an ML-20M-shaped ratings.csv (same header, id ranges and skew, synthetic values)."""
    rng = np.random.default_rng(seed)
    users, items = ML20M["users"], ML20M["items"]
    scale = rows / ML20M["rows"]
    users = max(1, round(users * scale))
    # per-user counts: >= 20, heavy tail (ML-20M: mean 144, median 68), summing to `rows`
    extra = rng.lognormal(mean=3.8, sigma=1.2, size=users)
    counts = 20 + np.floor(extra / extra.sum() * (rows - 20 * users)).astype(np.int64)
    counts[: rows - counts.sum()] += 1
    # item popularity: log-normal weights give a long head and a tail of rarely rated movies
    weights = rng.lognormal(mean=0.0, sigma=2.6, size=items)
    movie_ids = np.sort(rng.choice(131_262, size=items, replace=False) + 1)
    user_col = np.repeat(np.arange(1, users + 1, dtype=np.int32), counts)
    item_col = movie_ids[rng.choice(items, size=rows, p=weights / weights.sum())]
    start = rng.integers(822_873_600, 1_427_784_002, size=users)
    ts = np.repeat(start, counts) + rng.integers(0, 5_000_000, size=rows)
    ratings = rng.integers(1, 11, size=rows) / 2
    frame = pl.DataFrame(
        {
            "userId": user_col,
            "movieId": item_col.astype(np.int32),
            "rating": ratings,
            "timestamp": ts,
        }
    )
    frame.sort(["userId", "movieId"]).write_csv(path)


def _stats(cache: Path) -> dict:
    [entry] = (cache / "prepared").iterdir()
    return json.loads((entry / "meta.json").read_text())["stats"]


def _count_rows(path: Path) -> int | None:
    if not path.is_file():
        return None
    with path.open("rb") as f:
        return sum(1 for _ in f) - 1  # minus the header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ML20M["rows"])
    parser.add_argument("--keep", type=Path, help="keep the generated file and cache here")
    args = parser.parse_args()
    console = Console(width=120)
    work = args.keep or Path(tempfile.mkdtemp(prefix="seqbench-prep-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    table = Table(title="seqbench prep: wall time and peak RSS (fresh process each)")
    for column in ("input", "rows", "run", "wall s", "peak RSS GiB", "target"):
        table.add_column(column, justify="right" if column not in ("input", "run") else "left")
    try:
        ratings = work / "ratings.csv"
        if not ratings.exists():
            tick = time.perf_counter()
            ml20m_like(ratings, args.rows)
            console.print(
                f"generated {ratings} ({ratings.stat().st_size / 2**20:,.0f} MiB) in "
                f"{time.perf_counter() - tick:.1f} s"
            )
        cases = [("ML-20M-shaped ratings.csv", "ml-20m", [str(ratings)], "< 20 s, < 4 GiB")]
        if SHARED.exists():
            cases += [
                (
                    "shared ml-latest-small",
                    "ml-latest-small",
                    [str(SHARED / "movielens" / "ml-latest-small" / "ratings.csv")],
                    "",
                ),
                ("shared S3Rec Beauty", "s3rec", [str(SHARED / "s3rec")], ""),
            ]
        for label, dataset, sources, target in cases:
            cache = work / f"cache-{dataset}"
            shutil.rmtree(cache, ignore_errors=True)
            source_args = [a for s in sources for a in ("--source", s)]
            rows = _count_rows(Path(sources[0]))
            for run in ("cold", "warm (cache reused)"):
                measured = run_seqbench(
                    "prep", "--dataset", dataset, *source_args, "--data-dir", str(cache)
                )
                if run == "cold":
                    stats = _stats(cache)
                    console.print(
                        f"{label}: {stats['users']:,} users, {stats['items']:,} items, "
                        f"{stats['interactions']:,} interactions after filtering"
                    )
                table.add_row(
                    label,
                    f"{rows:,}" if rows else "",
                    run,
                    f"{measured.seconds:.2f}",
                    f"{measured.peak_rss_gib:.2f}",
                    target if run == "cold" else "",
                )
        console.print(table)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
