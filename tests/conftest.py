"""Shared test helpers: run the CLI in-process, write fixture files, find real data if present."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from seqbench.cli import main
from seqbench.data.cache import write_arrays
from seqbench.data.dataset import Dataset
from seqbench.data.pipeline import Prepared
from seqbench.fsutil import atomic_write_json

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# a `bench` small enough to run several times in a test, long enough (5 epochs) to stop midway
SMALL_RUN = ["--dataset", "synthetic", "--items", "200", "--users", "800", "--mean-len", "12",
             "--dim", "32", "--layers", "1", "--heads", "1", "--max-len", "20", "--epochs", "5",
             "--patience", "5", "--batch-size", "64", "--k", "10"]


def epochs_recorded(runs: Path) -> int:
    """Epoch events so far in the (only) run under `runs`; 0 before it exists."""
    files = list(runs.glob("*/events.jsonl"))
    return files[0].read_text().count('"event": "epoch"') if files else 0


@dataclass
class CliResult:
    """What one in-process `seqbench` invocation produced."""

    code: int
    out: str
    err: str


Cli = Callable[..., CliResult]


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    """Run `seqbench ARGS` in this process and return exit code, stdout and stderr."""
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    path = tmp_path / "cache"
    path.mkdir()
    return path


def write(path: Path, text: str | bytes, *, gz: bool = False) -> Path:
    """Write a fixture file (gzip-compressed when `gz`), creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def cache_entries(cache_dir: Path) -> list[Path]:
    """Everything under the prepared-data directory: entries and any staging leftovers."""
    prepared = cache_dir / "prepared"
    return sorted(prepared.iterdir()) if prepared.is_dir() else []


def needs_shared_data(*parts: str) -> pytest.MarkDecorator:
    path = SHARED_DATA.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"real data not present: {path}")


def make_dataset(directory: Path, sequences: list[list[int]], num_items: int | None = None
                 ) -> Dataset:
    """A `Dataset` with exactly these user sequences (item ids 1..num_items), for engine tests."""
    items = np.array([i for seq in sequences for i in seq], dtype=np.int32)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    num_items = num_items or int(items.max())
    prepared = Prepared(items=items, offsets=offsets,
                        user_ids=pl.Series("user", range(len(sequences))),
                        item_ids=pl.Series("item", range(1, num_items + 1)))
    directory.mkdir(parents=True, exist_ok=True)
    write_arrays(prepared, directory)
    meta = {"dataset": "fixture", "key": "fixture",
            "stats": {"items": num_items, "users": len(sequences), "interactions": len(items)}}
    atomic_write_json(directory / "meta.json", meta)
    return Dataset.load(directory)
