#!/bin/sh
# x2 default: the shipped x4 default's body (every tensor but the head), head fitted by
# least squares, then L1 + the paper's FFT loss (no x2 teacher exists), bf16 + channels_last.
# Run from the worktree root.
exec nice -n 19 env OMP_WAIT_POLICY=PASSIVE PYTHONPATH=$PWD ${PYTHON:-.venv/bin/python} -m srx train \
  --scale 2 --data ../shared/data/train --val ../shared/data/benchmarks/Set5 \
  --init srx/models/weights/safmn_x4.safetensors --fit-head \
  --iters 2500 --warmup 100 --batch 8 --patch 48 --lr 5e-4 --fft-weight 0.05 \
  --bf16 --channels-last --threads 1 \
  --val-every 250 --save-every 100 --log-every 25 -o runs/default-x2
