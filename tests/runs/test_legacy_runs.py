"""Run directories written by seqbench 0.1.0 (tests/fixtures/runs-0.1.0, made before the
settings were declared once) still read: compare shows what 0.1.0's compare showed, the
dashboard follows them, a time-limited run resumes, and a pretraining's checkpoint fine-tunes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from seqbench.config import config_from_record
from seqbench.dash.runs_model import RunsWatcher
from seqbench.report.compare import CompareOptions, select_runs
from seqbench.runs.read import list_runs
from seqbench.runs.schema import ModelKind
from tests.conftest import Cli
from tests.report.test_compare import json_rows

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DATA = ["--dataset", "synthetic", "--items", "150", "--users", "200", "--mean-len", "8",
        "--dim", "16", "--layers", "1", "--heads", "1", "--max-len", "10"]


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A copy of the 0.1.0 runs (resuming appends to a run)."""
    return Path(shutil.copytree(FIXTURES / "runs-0.1.0", tmp_path / "runs"))


def _by_run(rows: list[dict]) -> dict[tuple[str, str | None], dict]:
    return {(row["run_id"], row["protocol"]): {k: v for k, v in row.items() if k != "path"}
            for row in rows}


def test_compare_shows_what_0_1_0_showed(runs: Path) -> None:
    """Plus one column 0.1.0 did not have: the split, leave-one-out for all its runs."""
    expected = json.loads((FIXTURES / "runs-0.1.0.compare.json").read_text())
    rows = json_rows(runs)
    assert [row.pop("split") for row in rows] == ["loo"] * len(expected)
    assert _by_run(rows) == _by_run(expected)


def test_the_records_read_through_the_schema(runs: Path) -> None:
    views = {view.run_id[-4:]: view for view in list_runs(runs)}
    assert {key: view.resolved.kind for key, view in views.items()} == {
        "fb94": ModelKind.SASREC, "048f": ModelKind.SASREC, "387b": ModelKind.SASREC,
        "77dd": ModelKind.S3REC_PRETRAIN, "7754": ModelKind.S3REC}
    assert (views["77dd"].resolved.rank, views["77dd"].resolved.variant) == (4, "r4")
    assert views["7754"].resolved.variant == "r4"  # the fine-tuning names its pretraining
    assert views["387b"].status == "failed"
    assert views["387b"].summary_view.error["type"] == "Diverged"  # type: ignore[index]
    epochs = views["fb94"].epochs()
    assert [e.epoch for e in epochs] == [1, 2] and all(e.valid for e in epochs)
    facts, _ = select_runs(CompareOptions(runs_dir=runs))
    assert {f.variant for f in facts if f.view.run_id.endswith(("77dd", "7754"))} == {"r4"}


def test_old_configs_read_as_todays_settings(runs: Path) -> None:
    for view in list_runs(runs):
        config = config_from_record(view.config)
        old = view.config
        assert config.train.time_limit == old["train"]["time_limit_min"]
        assert config.eval.protocol == old["eval"]["protocols"]
        assert config.eval.k == old["eval"]["ks"]
        assert config.pretrain.aap_weight == old["pretrain"]["aap"]
        low = old["pretrain"]["lowrank"]  # 0.1.0 kept `rank = 16` even for full rank
        assert config.pretrain.rank == (old["pretrain"]["rank"] if low else None)
        assert config.data.data_seed == old["data"]["seed"]


def test_the_dashboard_follows_them(runs: Path) -> None:
    watcher = RunsWatcher(runs)
    watcher.poll(force=True)
    tracked = {run.run_id[-4:]: run for run in watcher.ordered()}
    assert tracked["fb94"].status == "finished" and tracked["387b"].status == "failed"
    assert tracked["fb94"].series.epochs == [1.0, 2.0]
    assert tracked["fb94"].protocol == "full" and None not in tracked["fb94"].series.ndcg10
    assert tracked["77dd"].is_pretraining and tracked["77dd"].backend == "rank 4"
    assert tracked["048f"].backend == "cce[cpu-blockwise]"


def test_a_time_limited_run_of_0_1_0_goes_on_with_a_longer_limit(
        runs: Path, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQBENCH_CACHE", str(tmp_path / "cache"))  # the data is generated
    [run] = runs.glob("*-048f")
    result = cli("bench", "--resume", str(run), "--time-limit", "600")
    assert result.code == 0, result.err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_run"] > 1
    assert summary["loss_backend"] == "cce[cpu-blockwise]"
    train = json.loads((run / "config.json").read_text())["train"]
    assert train["time_limit"] == 600 and "time_limit_min" not in train  # today's spelling
    resumed = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()
               if '"resumed"' in line]
    assert [(e["from_epoch"], e["previous_time_limit"]) for e in resumed] == [(1, 0.0001)]


def test_a_pretraining_of_0_1_0_fine_tunes(runs: Path, tmp_path: Path, cli: Cli) -> None:
    [pretraining] = runs.glob("*-77dd")
    result = cli("finetune", *DATA, "--from", str(pretraining), "--epochs", "1", "--k", "5,10",
                 "--data-dir", str(tmp_path / "cache"), "--runs-dir", str(tmp_path / "new"))
    assert result.code == 0, result.err
    [run] = (tmp_path / "new").iterdir()
    config = json.loads((run / "config.json").read_text())
    assert config["resolved"]["model"] == "s3rec"
    assert config["resolved"]["pretrained"]["variant"] == "r4"
    assert config["resolved"]["pretrained"]["checkpoint"].endswith("epoch-2.pt")
