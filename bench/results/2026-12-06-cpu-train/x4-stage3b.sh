#!/bin/sh
# x4 stage 3, second try, in the ~25 minutes left once x2 / x3 were done: from the shipped
# stage 2 (every tensor), a short, low cosine (1e-4, 50 of warm-up) so that it does not first
# lose ground as a 3e-4 / 5e-4 restart does; batch 16, distilled from team15 as stages 1-2.
exec nice -n 19 env OMP_WAIT_POLICY=PASSIVE PYTHONPATH=$PWD ${PYTHON:-.venv/bin/python} -m srx train \
  --scale 4 --data ../shared/data/train --val ../shared/data/benchmarks/Set5 \
  --init srx/models/weights/safmn_x4.safetensors --teacher ../shared/weights/team15_SAFMN.pth \
  --iters 1200 --warmup 50 --batch 16 --patch 48 --lr 1e-4 \
  --bf16 --channels-last --threads 1 --max-minutes 25 \
  --val-every 200 --save-every 50 --log-every 25 -o runs/default-x4-stage3b
