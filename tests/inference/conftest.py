"""One small finished run for the tests of using a run (recommend, the API, export).

It is trained once per session through the Python API (the same recipe as `seqbench bench`),
and its dataset cache is deleted straight after: every test that uses it also shows that a
run recommends from its own directory alone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import seqbench

#: small but real: 200 items, 800 users, two epochs of a one-layer SASRec
TRAINING = {"dataset": "synthetic", "items": 200, "users": 800, "mean_len": 12, "dim": 32,
            "layers": 1, "heads": 1, "max_len": 20, "epochs": 2, "batch_size": 64,
            "k": [5, 10, 20], "eval_batch_size": 128}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished bench run whose dataset cache no longer exists."""
    root = tmp_path_factory.mktemp("trained")
    runs = seqbench.bench(**TRAINING, runs_dir=str(root / "runs"), data_dir=str(root / "cache"))
    shutil.rmtree(root / "cache")
    return runs[0].path
