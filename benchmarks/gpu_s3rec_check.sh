#!/usr/bin/env bash
# S3Rec on S3Rec Beauty on a GPU, under a wall-clock budget: full-rank and rank-16 pretraining,
# each fine-tuned at once (bce, both protocols), and SASRec (bce, no pretraining) for the
# ablation row. The three pipelines run side by side on the one GPU, so their times are not
# comparable with each other; their metrics are.
#
#   benchmarks/gpu_s3rec_check.sh OUT_DIR S3REC_DATA_DIR [MINUTES_PER_STAGE] [PRETRAIN_BATCH]
set -u
out=${1:?OUT_DIR}
data=${2:?S3REC_DATA_DIR}
minutes=${3:-1.6}
batch=${4:-100}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 SEQBENCH_CACHE=/tmp/seqbench-cache
runs=/tmp/seqbench-runs
py=${PYTHON:-python3}
common=(--config configs/s3rec-beauty.toml --source "$data" --runs-dir "$runs"
        --time-limit "$minutes")
"$py" -m seqbench prep --config configs/s3rec-beauty.toml --source "$data" >/dev/null 2>&1
"$py" -m seqbench pretrain "${common[@]}" --batch-size "$batch" --finetune \
  >"$out/s3rec_full.log" 2>&1 &
"$py" -m seqbench pretrain "${common[@]}" --batch-size "$batch" --rank 16 \
  --finetune >"$out/s3rec_r16.log" 2>&1 &
"$py" -m seqbench finetune --config configs/s3rec-beauty.toml --source "$data" \
  --runs-dir "$runs" --time-limit "$(awk "BEGIN { print $minutes * 2 }")" >"$out/sasrec_bce.log" 2>&1 &
wait
tail -n 45 "$out"/*.log
[ -d "$runs" ] && tar -C "$runs" --exclude='*.pt' -czf "$out/s3rec_runs.tgz" .
