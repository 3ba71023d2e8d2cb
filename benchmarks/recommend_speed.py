"""How fast `seqbench recommend` is: top-10 for every user of a run, from loading to the file.

* S3Rec Beauty (22,363 users, 12,101 items; ../shared/data/s3rec): a short bench run is
  trained (its quality does not matter here, only its shape: d 64, length 50), then
  `seqbench recommend RUN --out top10.parquet` runs in a fresh process: wall time including
  Python's start and imports, the time inside the command (loading the run, ranking, writing)
  and the peak resident memory. Target: at most 5 s on a 2-core CPU.
* A 1,000,000-item synthetic catalogue (its default ~2M users, 40M interactions): training
  and evaluating every user there is hours of CPU, so the run is recorded with *untrained*
  weights through the real run writer (best.pt, dataset/, summary.json; speed only, its lists
  mean nothing), and `recommend --users` ranks the first `--big-users` users over all 1M items:
  users per second and peak memory, which scoring in item blocks keeps bounded by batch x
  block, not users x items.

    python benchmarks/recommend_speed.py [--skip-big] [--big-users 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _run import run_seqbench  # noqa: E402

BEAUTY = ROOT.parent / "shared" / "data" / "s3rec"
SHORT_RUN = ["--epochs", "1", "--max-batches", "3", "--loss", "cce"]


def train(work: Path, *data: str) -> Path:
    runs = work / "runs"
    run_seqbench("bench", *data, *SHORT_RUN, "--runs-dir", str(runs),
                 "--data-dir", str(work / "cache"))
    (run,) = runs.iterdir()
    return run


def untrained_run(work: Path, items: int) -> Path:
    """A finished-looking run on `synthetic --items N` with untrained weights, recorded with
    the run writer itself (what recommend reads), without training or evaluating."""
    import dataclasses

    from seqbench.config import load_plan
    from seqbench.data.prep import prepare
    from seqbench.engine.encoder import count_parameters
    from seqbench.engine.sasrec import SASRec
    from seqbench.recipes import encoder_shape
    from seqbench.runs.portable import attach_dataset
    from seqbench.runs.record import RunRecorder
    from seqbench.runs.schema import RunSummary

    config = load_plan(None, {"data.dataset": "synthetic", "data.items": items,
                              "data.data_dir": str(work / "cache"),
                              "train.runs_dir": str(work / "runs")}).config
    dataset = prepare(config.data).dataset
    shape = encoder_shape(config, dataset.num_items)
    model = SASRec(shape)
    record = {**config.to_dict(), "resolved": {
        "model": "sasrec", "device": "cpu", "parameters": count_parameters(model),
        "dataset_path": str(dataset.path), "dataset_key": dataset.meta["key"],
        "dataset_stats": dataset.meta["stats"], "note": "untrained weights (benchmark)"}}
    with RunRecorder.create(work / "runs", config=record,
                            name_parts=["synthetic", "sasrec", "untrained"]) as recorder:
        recorder.save_checkpoint("best", {"model": model.state_dict(), "epoch": 0,
                                          "kind": "sasrec", "shape": dataclasses.asdict(shape),
                                          "dataset_key": dataset.meta["key"]})
        attach_dataset(recorder.path, dataset.path)
        recorder.finish(RunSummary(
            dataset="synthetic", model="sasrec", seed=0, device="cpu",
            parameters=count_parameters(model), epochs_run=0, stop_reason="epochs",
            mean_epoch_seconds=0.0, peak_memory_bytes=0, memory_kind="none",
            sequences_per_second=0.0, run_id=recorder.run_id, path=str(recorder.path)))
        return recorder.path


def in_process(run: Path, out: Path, users: list[str] | None = None) -> dict[str, float]:
    """Seconds for load, ranking and writing inside one process (imports done before)."""
    import seqbench
    from seqbench.inference.files import write_frame

    started = time.perf_counter()
    rec = seqbench.load(run)
    loaded = time.perf_counter()
    frame = rec.recommend_users(users, k=10)
    ranked = time.perf_counter()
    write_frame(frame, out)
    written = time.perf_counter()
    return {"load": loaded - started, "rank": ranked - loaded, "write": written - ranked,
            "users": frame["user"].n_unique()}


def measure(label: str, run: Path, work: Path, repeats: int,
            users: list[str] | None = None) -> list[str]:
    walls, peaks = [], []
    chosen: list[str] = []
    if users is not None:
        (work / "users.txt").write_text("\n".join(users) + "\n")
        chosen = ["--users", str(work / "users.txt")]
    for attempt in range(repeats):
        out = work / f"top10-{attempt}.parquet"
        measured = run_seqbench("recommend", str(run), *chosen, "--out", str(out))
        walls.append(measured.seconds)
        peaks.append(measured.peak_rss_gib)
    parts = in_process(run, work / "top10-inprocess.parquet", users)
    users = parts["users"]
    inside = parts["load"] + parts["rank"] + parts["write"]
    wall = statistics.median(walls)
    return [f"| {label} | {users:,} | {wall:.2f} | {inside:.2f} | {parts['load']:.2f} | "
            f"{parts['rank']:.2f} | {parts['write']:.2f} | {users / parts['rank']:,.0f} | "
            f"{max(peaks):.2f} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-big", action="store_true", help="skip the 1M-item catalogue")
    parser.add_argument("--big-users", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    rows = ["| catalogue | users | command wall s (median) | in-process s | load | rank | "
            "write | users/s (ranking) | peak RSS GiB |", "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if BEAUTY.exists():
            run = train(work / "beauty", "--dataset", "s3rec", "--source", str(BEAUTY))
            rows += measure("S3Rec Beauty, 12,101 items", run, work / "beauty", args.repeats)
        else:
            print(f"(no {BEAUTY}: Beauty skipped)")
        if not args.skip_big:
            import polars as pl

            run = untrained_run(work / "big", 1_000_000)
            users = pl.read_parquet(run / "dataset" / "users.parquet")["original"]
            rows += measure(f"synthetic, {1_000_000:,} items (untrained)", run, work / "big",
                            1, [str(u) for u in users.head(args.big_users)])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n".join(rows))
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
