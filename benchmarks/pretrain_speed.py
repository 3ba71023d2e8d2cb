"""How long does one S3Rec pretraining epoch take? Target (issue 4): <= 60 s on S3Rec Beauty on
the 2-core CPU, with the published batch size (100) and all four tasks.

Runs `seqbench pretrain --epochs 1` in a fresh process per variant (full-rank, low-rank r = 16)
and prints the epoch time, throughput and peak memory it recorded.

    python benchmarks/pretrain_speed.py [--source ../shared/data/s3rec] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "s3rec"
VARIANTS = {"full-rank": [], "low-rank r=16": ["--rank", "16"]}


def run(variant: list[str], source: Path, device: str, work: Path) -> dict:
    runs = work / "runs"
    before = set(runs.glob("*")) if runs.exists() else set()
    command = [sys.executable, "-m", "seqbench", "pretrain", "--config",
               str(ROOT / "configs" / "s3rec-beauty.toml"), "--source", str(source),
               "--epochs", "1", "--device", device, "--runs-dir", str(runs), *variant]
    env = {**os.environ, "SEQBENCH_CACHE": str(work / "cache")}
    subprocess.run(command, check=True, env=env, cwd=ROOT, capture_output=True)
    (run_dir,) = set(runs.glob("*")) - before
    return json.loads((run_dir / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SHARED)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if not args.source.exists():
        raise SystemExit(f"{args.source}: S3Rec Beauty not found (pass --source)")
    table = Table(title=f"S3Rec pretraining, one epoch on S3Rec Beauty ({args.device}, "
                        f"batch 100, AAP+MIP+MAP+SP)")
    for column in ("variant", "instances", "epoch s", "instances/s", "peak memory",
                   "pretrain params", "losses (epoch 1)"):
        table.add_column(column, justify="left" if column in ("variant", "losses (epoch 1)")
                         else "right")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, variant in VARIANTS.items():
            summary = run(variant, args.source, args.device, work)
            config = json.loads((Path(summary["path"]) / "config.json").read_text())
            losses = ", ".join(f"{k} {v:.3g}" for k, v in summary["final_losses"].items())
            table.add_row(name, f"{config['resolved']['instances']:,}",
                          f"{summary['mean_epoch_seconds']:.1f}",
                          f"{summary['sequences_per_second']:,.0f}",
                          f"{summary['peak_memory_bytes'] / 2**20:,.0f} MiB "
                          f"({summary['memory_kind']})",
                          f"{summary['parameters']:,}", losses)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    Console(width=160).print(table)
    print(f"device: {summary['device']}; load average {load[0]:.2f} (target: epoch <= 60 s)")


if __name__ == "__main__":
    main()
