#!/bin/sh
# Starting points of the x2 / x3 runs and the iteration cost of the four precision / layout
# settings at those scales (1 thread, batch 8, 48-pixel LR patches), as for x4 on 2026-11-28.
for s in 2 3; do
  nice -n 19 env OMP_WAIT_POLICY=PASSIVE PYTHONPATH=$PWD ${PYTHON:-.venv/bin/python} bench/train_recipe.py \
    bench/results/2026-12-06-cpu-train --scale $s --rounds 3 --threads 1 > bench/results/2026-12-06-cpu-train/recipe-x$s.log 2>&1
done
