"""Two processes on torch.distributed (gloo, CPU): one run directory, and metrics equal to a
single process evaluating the same weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from seqbench.config import load_config
from seqbench.engine.sasrec import SASRec
from seqbench.recipes import _shape, prepare_bench
from seqbench.runs.record import load_checkpoint

DATA = {"dataset": "synthetic", "items": 200, "users": 800, "mean_len": 12.0}
MODEL = {"dim": 32, "layers": 1, "heads": 1, "max_len": 20, "dropout": 0.2}


def test_two_process_training_writes_one_run_and_evaluates_exactly(tmp_path: Path) -> None:
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node=2", "-m", "seqbench", "bench", "--items", "200", "--users",
               "800", "--mean-len", "12", "--dim", "32", "--layers", "1", "--heads", "1",
               "--max-len", "20", "--epochs", "2", "--batch-size", "64",
               "--protocol", "full,sampled-99", "--runs-dir", str(runs)]
    env = {**os.environ, "SEQBENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run] = list(runs.iterdir())  # only rank 0 records
    summary = json.loads((run / "summary.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert config["resolved"]["processes"] == 2
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2]

    # the recorded test metrics (gathered over 2 ranks) == one process on the same weights
    cfg = load_config(None, {"data": {**DATA, "cache_dir": str(cache)}, "model": MODEL,
                             "train": {"runs_dir": str(tmp_path / "unused")},
                             "eval": {"protocols": ["full", "sampled-99"]}})
    context = prepare_bench(cfg)
    model = SASRec(_shape(cfg, context.dataset))
    model.load_state_dict(load_checkpoint(run / "best.pt")["model"])
    model.eval()
    with torch.no_grad():
        alone = context.test(model)
    assert alone == summary["test"]


def test_two_process_pretraining_and_finetuning_record_once_each(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node=2", "-m", "seqbench", "pretrain", "--items", "200",
               "--users", "800", "--mean-len", "12", "--dim", "32", "--layers", "1", "--heads",
               "1", "--max-len", "20", "--epochs", "2", "--lowrank", "--rank", "4",
               "--finetune", "--runs-dir", str(runs)]
    env = {**os.environ, "SEQBENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = {json.loads((run / "config.json").read_text())["resolved"]["model"]:
                 json.loads((run / "summary.json").read_text()) for run in runs.iterdir()}
    assert set(summaries) == {"s3rec-pretrain", "s3rec"}  # one run each, from rank 0
    pre = summaries["s3rec-pretrain"]
    assert pre["final_losses"]["loss"] < pre["first_losses"]["loss"]
    assert summaries["s3rec"]["test"]["sampled-99"]["NDCG@10"] > 0
