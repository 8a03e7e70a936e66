#!/bin/sh
# x4 stage 3: from the shipped stage 2 (every tensor), a third cosine from 3e-4, batch 16,
# distilled from team15 as stages 1 and 2, bf16 + channels_last.
exec nice -n 19 env OMP_WAIT_POLICY=PASSIVE PYTHONPATH=$PWD ${PYTHON:-.venv/bin/python} -m srx train \
  --scale 4 --data ../shared/data/train --val ../shared/data/benchmarks/Set5 \
  --init srx/models/weights/safmn_x4.safetensors --teacher ../shared/weights/team15_SAFMN.pth \
  --iters 1500 --warmup 100 --batch 16 --patch 48 --lr 3e-4 \
  --bf16 --channels-last --threads 1 \
  --val-every 250 --save-every 50 --log-every 25 -o runs/default-x4-stage3
