#!/usr/bin/env bash
# Issue 19's device check in one script (at most ~6 minutes on an H100/H200): host syncs per step
# and step time before/after; ce vs cce over 3 timed epochs after a warm-up epoch at 20k and
# ~200k synthetic items, with peak memory; one S3Rec Beauty pretraining epoch at batch 100.
#
#   benchmarks/gpu_check.sh OUT_DIR S3REC_DATA_DIR
#
# Each phase has its own time limit and writes its table to OUT_DIR; one failing does not
# stop the next. Timing phases run one process at a time.
set -u
out=${1:?OUT_DIR}
data=${2:?S3REC_DATA_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 SEQBENCH_CACHE=/tmp/seqbench-cache
runs=/tmp/seqbench-gpu-runs
py=${PYTHON:-python3}
sb=("$py" -m seqbench)

echo "== 0. environment" | tee "$out/environment.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$out/environment.txt"
"$py" -c "import torch, cut_cross_entropy; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
  | tee -a "$out/environment.txt"

echo "== 1. host syncs per training step, before/after (sync debug mode)"
timeout 120 "$py" benchmarks/step_syncs.py --device cuda --items 20000,200000 --steps 30 \
  | tee "$out/step_syncs.md"

echo "== 2. ce vs cce: 4 epochs (the first is the warm-up: compilation, autotuning), 200 batches each"
for items in 20000 200000; do
  for loss in ce cce; do
    timeout 100 "${sb[@]}" bench --dataset synthetic --items "$items" --loss "$loss" --epochs 4 \
      --patience 99 --max-batches 200 --runs-dir "$runs/epochs-$items-$loss" >"$out/epochs-$items-$loss.log" 2>&1
  done
done
"$py" - "$runs" <<'PY' | tee "$out/ce_vs_cce.md"
import json, statistics, sys
from pathlib import Path
print("| items | loss | warm-up epoch s | mean of epochs 2-4 s | peak memory MiB (epochs 2-4) |")
print("|---|---|---|---|---|")
for run in sorted(Path(sys.argv[1]).glob("epochs-*/*/events.jsonl")):
    epochs = [json.loads(line) for line in run.read_text().splitlines() if '"event": "epoch"' in line]
    if len(epochs) < 4:
        print(f"| {run.parent.parent.name} | incomplete ({len(epochs)} epochs) | | | |")
        continue
    _, items, loss = run.parent.parent.name.split("-")
    timed = epochs[1:4]
    print(f"| {int(items):,} | {loss} | {epochs[0]['epoch_seconds']:.2f} | "
          f"{statistics.fmean(e['epoch_seconds'] for e in timed):.2f} | "
          f"{max(e['peak_memory_bytes'] for e in timed) / 2**20:,.0f} |")
PY

echo "== 3. S3Rec Beauty pretraining, batch 100: 2 epochs (the first warms up)"
timeout 120 "${sb[@]}" pretrain --dataset s3rec --source "$data" --epochs 2 --batch-size 100 \
  --runs-dir "$runs/pretrain" 2>&1 | tail -n 20 | tee "$out/pretrain.log"

echo "== records"
[ -d "$runs" ] && tar -C "$runs" --exclude='*.pt' -czf "$out/runs.tgz" .
ls -la "$out"
