#!/usr/bin/env bash
# The engine's GPU checks in one script (what a CPU cannot show): Apple's CCE kernel against full
# CE, CUDA peak memory and epoch time of `ce` vs `cce`, and the S3Rec-Beauty quality runs.
#
#   benchmarks/gpu_engine_check.sh OUT_DIR S3REC_DATA_DIR
#
# Phases are independent (one failing does not stop the next) and each has its own time limit.
# Timing phases run one process at a time; the quality runs (phase 4) run side by side, so their
# epoch times are not comparable with each other; their metrics and peak memory are.
set -u
out=${1:?OUT_DIR}
data=${2:?S3REC_DATA_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 SEQBENCH_CACHE=/tmp/seqbench-cache
runs=/tmp/seqbench-runs
py=${PYTHON:-python3}
sb=("$py" -m seqbench)
phases=${PHASES:-0 1 2 3 4}
run_phase() { [[ " $phases " == *" $1 "* ]]; }

if run_phase 0; then
echo "== 0. environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$py" -c "import torch, triton, cut_cross_entropy as c; print('torch', torch.__version__, \
'triton', triton.__version__, 'cuda', torch.version.cuda)"
nproc
fi

if run_phase 1; then
echo "== 1. CUDA tests (kernel vs CE, CUDA peak meter) and a CUDA smoke run"
timeout 120 "$py" -m pytest -q -p no:cacheprovider tests/engine/test_losses.py tests/engine/test_telemetry.py \
  tests/engine/test_evaluate.py
timeout 60 "${sb[@]}" bench --epochs 1 --runs-dir "$runs/smoke"
fi

if run_phase 2; then
echo "== 2. loss memory and time, 12,800 positions, d = 64"
timeout 120 "$py" benchmarks/loss_memory.py --device cuda --items 20000,200000 --repeats 3
fi

if run_phase 3; then
echo "== 3. epoch time and peak memory, one epoch each, same data (sequential)"
for items in 20000 200000; do
  for loss in ce cce; do
    timeout 90 "${sb[@]}" bench --dataset synthetic --items "$items" --loss "$loss" --epochs 1 \
      --max-batches 300 --runs-dir "$runs/speed"
  done
done
fi

if run_phase 4; then
echo "== 4. S3Rec Beauty quality: ce, cce (filter_eps high), cce (filter_eps none), side by side"
common=(--config configs/s3rec-beauty.toml --source "$data" --runs-dir "$runs/beauty"
        --time-limit "${BEAUTY_MINUTES:-2}")
timeout 200 "${sb[@]}" bench "${common[@]}" --loss ce >"$out/beauty_ce.log" 2>&1 &
timeout 200 "${sb[@]}" bench "${common[@]}" --loss cce --filter-eps high \
  >"$out/beauty_cce_high.log" 2>&1 &
timeout 200 "${sb[@]}" bench "${common[@]}" --loss cce --filter-eps none \
  >"$out/beauty_cce_none.log" 2>&1 &
wait
tail -n 30 "$out"/beauty_*.log
fi

echo "== records"
[ -d "$runs" ] && tar -C "$runs" --exclude='*.pt' -czf "$out/runs.tgz" .
ls -la "$out"
