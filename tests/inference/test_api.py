"""The Python API: docs/api.md's examples run as written, and `import seqbench` stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import seqbench
from seqbench.errors import SeqbenchError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_the_examples_in_docs_api_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), namespace)  # the examples assert what they show
    assert (tmp_path / "runs").is_dir() and (tmp_path / "cache").is_dir()


def test_import_seqbench_loads_no_torch_polars_or_cli() -> None:
    code = ("import sys, seqbench; heavy = [m for m in ('torch', 'polars', 'typer', 'numpy') "
            "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_recommender_members_agree(trained_run: Path) -> None:
    rec = seqbench.load(trained_run)
    assert rec.run_id == trained_run.name and rec.config.model.dim == 32
    assert len(rec.item_ids) == rec.num_items == 200
    histories = [[rec.item_ids[0], rec.item_ids[5]], [rec.item_ids[9], "unknown-item"]]
    lists = rec.recommend(histories, k=200, exclude_seen=True)
    assert [len(x.items) for x in lists] == [198, 199]  # everything but the seen items
    everything = rec.recommend(histories, k=200, exclude_seen=False)
    assert sorted(everything[0].items) == sorted(rec.item_ids)
    scores = rec.score(histories, rec.item_ids)
    vectors = rec.user_vectors(histories)
    assert np.allclose(scores, vectors @ rec.item_embeddings().T, atol=1e-5)
    order = np.argsort(-scores[0], kind="stable")  # ties by id: ids are in table order
    assert [rec.item_ids[i] for i in order] == everything[0].items
    assert np.allclose(np.sort(scores[0])[::-1], everything[0].scores, atol=1e-5)


def test_api_errors_name_the_problem(trained_run: Path, tmp_path: Path) -> None:
    rec = seqbench.load(trained_run)
    with pytest.raises(SeqbenchError, match="item 'nope' is not in the run's dataset"):
        rec.score([[1]], ["nope"])
    with pytest.raises(SeqbenchError, match="between 1 and the catalogue's 200 items"):
        rec.recommend([[1]], k=0)
    with pytest.raises(SeqbenchError, match="history must be one of all, test"):
        rec.recommend_users(history="train")
    with pytest.raises(SeqbenchError, match="unknown setting 'epoch'"):
        seqbench.bench(epoch=1)
    with pytest.raises(SeqbenchError, match="not a seqbench run directory"):
        seqbench.load(tmp_path)
