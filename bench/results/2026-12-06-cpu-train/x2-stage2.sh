#!/bin/sh
# x2 stage 2: from stage 1's best (every tensor), a second, lower cosine (2e-4, 50 of warm-up)
# sized to end this session (~1.6 s/it under load); --max-minutes stops it resumably if the
# machine gets slower still.
exec nice -n 19 env OMP_WAIT_POLICY=PASSIVE PYTHONPATH=$PWD ${PYTHON:-.venv/bin/python} -m srx train \
  --scale 2 --data ../shared/data/train --val ../shared/data/benchmarks/Set5 \
  --init runs/default-x2/best.safetensors \
  --iters 1000 --warmup 50 --batch 8 --patch 48 --lr 2e-4 --fft-weight 0.05 \
  --bf16 --channels-last --threads 1 --max-minutes 40 \
  --val-every 250 --save-every 50 --log-every 25 -o runs/default-x2-stage2
