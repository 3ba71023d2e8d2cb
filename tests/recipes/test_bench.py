"""`bench` end to end on small synthetic data: learning, repeatability, run records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import seqbench.engine.next_item as next_item
from seqbench.config import RunConfig, load_config
from seqbench.recipes import bench, prepare_context
from seqbench.runs.read import read_run

SMALL = {"dataset": "synthetic", "items": 200, "users": 1200, "mean_len": 12.0}
FAST_MODEL = {"dim": 32, "layers": 1, "heads": 1, "dropout": 0.1, "max_len": 20}


def config(tmp_path: Path, **train: Any) -> RunConfig:
    return load_config(None, {
        "data": {**SMALL, "data_dir": str(tmp_path / "cache")},
        "model": FAST_MODEL,
        "train": {"epochs": 6, "patience": 6, "batch_size": 128, "lr": 3e-3,
                  "runs_dir": str(tmp_path / "runs"), "negatives": 64, **train},
        "eval": {"k": [10]},
    })


def diverge_from(monkeypatch: pytest.MonkeyPatch, call: int, factor: float, *,
                 once: bool = False) -> None:
    """Make the training loss non-finite at the `call`-th step (and after, unless `once`)."""
    original = next_item.NextItemTask.step
    calls = {"n": 0}

    def diverging(self: next_item.NextItemTask, batch: Any) -> dict[str, torch.Tensor]:
        calls["n"] += 1
        out = original(self, batch)
        if calls["n"] == call or (not once and calls["n"] > call):
            out["loss"] = out["loss"] * factor
        return out

    monkeypatch.setattr(next_item.NextItemTask, "step", diverging)


@pytest.mark.parametrize("loss", ["ce", "cce", "bce", "sampled"])
def test_every_loss_clearly_beats_most_popular(tmp_path: Path, loss: str) -> None:
    context = prepare_context(config(tmp_path))
    [summary] = bench(context, [context.config.replace(**{"train.loss": loss})])
    model = summary["test"]["full"]["NDCG@10"]
    popular = summary["baseline"]["test"]["full"]["NDCG@10"]
    assert model > 2 * popular and model - popular > 0.05, (model, popular)


def test_cpu_runs_are_bit_for_bit_repeatable(tmp_path: Path) -> None:
    context = prepare_context(config(tmp_path, epochs=2))
    twice = [context.config.replace(**{"train.loss": "cce", "train.seed": 3})] * 2
    first, second = bench(context, twice)
    assert first["run_id"] != second["run_id"]
    assert first["test"] == second["test"] and first["valid"] == second["valid"]
    losses = [[e["train_loss"] for e in read_run(Path(s["path"])).events if e["event"] == "epoch"]
              for s in (first, second)]
    assert losses[0] == losses[1]


def test_time_limit_stops_after_an_epoch_and_still_tests(tmp_path: Path) -> None:
    cfg = config(tmp_path, epochs=5)
    cfg.train.time_limit = 1e-6  # crossed by the end of the first epoch
    [summary] = bench(prepare_context(cfg))
    assert summary["epochs_run"] == 1 and summary["stop_reason"] == "time-limit"
    assert summary["best_epoch"] == 1 and summary["test"]["full"]["NDCG@10"] > 0
    without = config(tmp_path, epochs=2)
    [full] = bench(prepare_context(without))
    assert full["epochs_run"] == 2 and full["stop_reason"] == "epochs"


def test_run_directory_is_complete_after_success(tmp_path: Path) -> None:
    context = prepare_context(config(tmp_path, epochs=2))
    [summary] = bench(context)
    run = Path(summary["path"])
    assert {"config.json", "events.jsonl", "summary.json", "best.pt"} <= {
        p.name for p in run.iterdir()}
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["train"]["loss"] == "ce" and recorded["resolved"]["loss_backend"] == "ce[torch]"
    view = read_run(run)
    assert view is not None and view.status == "finished"
    epochs = [e for e in view.events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for event in epochs:
        assert event["train_loss"] > 0 and event["epoch_seconds"] > 0
        assert event["sequences_per_second"] > 0 and event["peak_memory_bytes"] > 0
        assert event["memory_kind"] == "cpu-rss" and "full" in event["valid"]
    state = torch.load(run / "best.pt", weights_only=True)
    assert state["kind"] == "sasrec" and "model" in state
    assert view.summary is not None and view.summary["test"]["full"]["HR@10"] >= 0


def test_run_directory_is_complete_after_an_injected_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    diverge_from(monkeypatch, 3, float("nan"))
    runs = tmp_path / "runs"
    result = cli("bench", "--items", "200", "--users", "1200", "--mean-len", "12",
                 "--data-dir", str(tmp_path / "cache"), "--runs-dir", str(runs),
                 "--epochs", "2", "--dim", "16", "--layers", "1", "--heads", "1")
    assert result.code == 1
    assert result.err.strip().splitlines()[-1].startswith("error: training diverged")
    assert "epoch 1, step 3" in result.err
    [run] = runs.iterdir()
    view = read_run(run)
    assert view is not None and view.status == "failed"
    assert view.events[-1]["event"] == "failed"
    assert "diverged" in view.events[-1]["error"]["message"]
    assert view.summary is not None and view.summary["status"] == "failed"


def test_divergence_keeps_the_last_good_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    diverge_from(monkeypatch, 7, float("inf"), once=True)  # 5 batches per epoch: epoch 2, step 2
    runs = tmp_path / "runs"
    result = cli("bench", "--items", "200", "--users", "1200", "--mean-len", "12",
                 "--data-dir", str(tmp_path / "cache"), "--runs-dir", str(runs),
                 "--epochs", "3", "--dim", "16", "--layers", "1", "--heads", "1")
    assert result.code == 1 and "epoch 2, step 2" in result.err
    [run] = runs.iterdir()
    last = torch.load(run / "last.pt", weights_only=True)
    assert last["epoch"] == 1  # the state before the bad step, ready for --resume
    assert all(torch.isfinite(t).all() for t in last["model"].values())


def test_bench_cli_runs_each_loss_and_seed(tmp_path: Path, cli) -> None:
    runs = tmp_path / "runs"
    result = cli("bench", "--loss", "ce,cce", "--seed", "1,2", "--items", "200", "--users",
                 "1200", "--mean-len", "12", "--data-dir", str(tmp_path / "cache"),
                 "--runs-dir", str(runs), "--epochs", "1", "--dim", "16", "--layers", "1",
                 "--heads", "1")
    assert result.code == 0, result.err
    assert len(list(runs.iterdir())) == 4
    assert "cce[cpu-blockwise]" in result.out and "ce[torch]" in result.out
    assert "(full)" in result.out  # the protocol is named next to the metrics


def test_threads_are_used_and_recorded(tmp_path: Path) -> None:
    """Two runs side by side each took every core and ran ~9x slower than alone: --threads N
    caps torch's threads for the run, and config.json says how many it had."""
    before = torch.get_num_threads()
    try:
        [summary] = bench(prepare_context(config(tmp_path, epochs=1, threads=1)))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    recorded = json.loads((Path(summary["path"]) / "config.json").read_text())
    assert recorded["train"]["threads"] == 1
