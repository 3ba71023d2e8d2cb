"""Scale check: SASRec training steps with `cce` on a 1,000,000-item `synthetic` catalogue, on
the CPU, within the machine's memory; and what `ce` would need there.

* prepares `synthetic --items 1000000` (about 2M users, 40M interactions; cached);
* trains SASRec (d 64, length 50, batch 256) for `--steps` batches with `cce[cpu-blockwise]`
  through the engine's own task and loss, and reports seconds per batch and the process's peak
  resident memory (VmHWM, reset just before training);
* computes what `ce` needs for the same batches (3 float32 [positions x items] buffers: logits,
  log-softmax, gradient) and measures `ce` fwd+bwd at the largest catalogue whose requirement
  stays under 35% of the available memory, in a fresh process (never near the OOM killer).

    python benchmarks/scale_1m.py [--items 1000000] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def meminfo_kib(field: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def train_slice(items: int, steps: int, cache: Path | None) -> dict:
    import torch

    from seqbench.config import DataConfig
    from seqbench.data.prep import prepare
    from seqbench.engine.batches import NextItemData
    from seqbench.engine.encoder import EncoderShape
    from seqbench.engine.losses import build_loss
    from seqbench.engine.next_item import NextItemTask
    from seqbench.engine.sasrec import SASRec
    from seqbench.engine.trainer import seed_everything

    started = time.perf_counter()
    data = DataConfig(dataset="synthetic", items=items, min_item=1,
                      data_dir=str(cache) if cache else None)
    dataset = prepare(data).dataset
    prep_seconds = time.perf_counter() - started
    generator = seed_everything(0)
    shape = EncoderShape(num_items=dataset.num_items, max_len=50, dim=64, layers=2, heads=2,
                         dropout=0.2)
    model = SASRec(shape)
    loss = build_loss("cce", num_items=dataset.num_items, device="cpu")
    task = NextItemTask(model, loss, NextItemData.build(dataset, 50), device=torch.device("cpu"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS from here on
    before = status_kib("VmRSS")
    positions, seconds = [], []
    model.train()
    for step, batch in enumerate(task.batches(256, generator), 1):
        tick = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        value = task.step(batch)["loss"]
        value.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - tick)
        positions.append(int((batch[1] > 0).sum()))
        print(f"step {step}: loss {value.item():.4f}, {positions[-1]:,} positions, "
              f"{seconds[-1]:.1f} s, RSS {status_kib('VmRSS') / 2**20:.2f} GiB", flush=True)
        if step >= steps:
            break
    return {"items": dataset.num_items, "users": dataset.num_users,
            "interactions": len(dataset.items), "prep_seconds": prep_seconds,
            "backend": loss.backend, "steps": len(seconds),
            "seconds_per_step": sum(seconds) / len(seconds),
            "mean_positions": sum(positions) / len(positions), "max_positions": max(positions),
            "rss_before_gib": before / 2**20, "peak_rss_gib": status_kib("VmHWM") / 2**20}


def ce_at(items: int, positions: int) -> dict:
    """One ce fwd+bwd at this shape in a fresh process (peak RSS over the step)."""
    code = f"""
import json, math, time, torch
from seqbench.engine.losses import build_loss
torch.manual_seed(0)
h = torch.randn({positions}, 64, requires_grad=True)
w = (torch.randn({items}, 64) * (3 / math.sqrt(64))).requires_grad_()
t = torch.randint(0, {items}, ({positions},))
loss = build_loss("ce", num_items={items}, device="cpu")
def rss(f):
    for line in open("/proc/self/status"):
        if line.startswith(f + ":"): return int(line.split()[1])
open("/proc/self/clear_refs", "w").write("5")
before = rss("VmRSS")
tick = time.perf_counter(); loss(h, w, t).backward(); took = time.perf_counter() - tick
print(json.dumps({{"seconds": took, "extra_gib": (rss("VmHWM") - before) / 2**20}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cache", type=Path, help="dataset cache (default: $SEQBENCH_CACHE)")
    args = parser.parse_args()
    result = train_slice(args.items, args.steps, args.cache)
    positions = int(result["max_positions"])
    need_gib = 12 * positions * result["items"] / 2**30
    budget_gib = 0.35 * meminfo_kib("MemAvailable") / 2**20
    fit_items = int(budget_gib * 2**30 / (12 * positions)) // 1000 * 1000
    ce = ce_at(fit_items, positions)
    print()
    print(f"synthetic --items {args.items:,}: {result['items']:,} items, {result['users']:,} "
          f"users, {result['interactions']:,} interactions (prep {result['prep_seconds']:.1f} s)")
    print(f"{result['backend']}: {result['steps']} batches of 256 sequences "
          f"(mean {result['mean_positions']:,.0f} target positions), "
          f"{result['seconds_per_step']:.1f} s per batch, peak RSS {result['peak_rss_gib']:.2f} "
          f"GiB (RSS before training {result['rss_before_gib']:.2f} GiB)")
    print(f"ce[torch] at {result['items']:,} items x {positions:,} positions would need "
          f"~{need_gib:.1f} GiB for its logits alone (3 float32 buffers); measured instead at "
          f"{fit_items:,} items (35% of available memory): {ce['extra_gib']:.2f} GiB extra, "
          f"{ce['seconds']:.1f} s fwd+bwd")


if __name__ == "__main__":
    main()
