#!/bin/sh
# Stage 2 of the embedded default: from stage 1's best, batch 16, a second cosine (issue 14)
cd "$(dirname "$0")/.."
exec nice -n 19 env OMP_WAIT_POLICY=PASSIVE .venv/bin/srx train \
  --data ../../shared/data/train --val ../../shared/data/benchmarks/Set5 \
  --teacher ../../shared/weights/team15_SAFMN.pth --init runs/default-x4-stage1/best.safetensors \
  --iters 4000 --warmup 200 --batch 16 --patch 48 --lr 5e-4 \
  --bf16 --channels-last --threads 2 \
  --val-every 500 --save-every 250 --log-every 50 \
  -o runs/default-x4-stage2 "$@"
