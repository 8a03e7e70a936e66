#!/bin/sh
# Stage 1 of the embedded default (issue 14); see bench/results/2026-11-28-cpu-train/README.md
cd "$(dirname "$0")/.."
exec nice -n 19 env OMP_WAIT_POLICY=PASSIVE .venv/bin/srx train \
  --data ../../shared/data/train --val ../../shared/data/benchmarks/Set5 \
  --teacher ../../shared/weights/team15_SAFMN.pth --linear-start \
  --iters 8000 --warmup 300 --batch 8 --patch 48 --lr 1e-3 \
  --bf16 --channels-last --threads 2 \
  --val-every 500 --save-every 250 --log-every 50 \
  -o runs/default-x4-stage1 "$@"
