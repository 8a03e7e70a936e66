#!/bin/sh
# srx eval of the shipped x4 default after stage 3 replaced stage 2 (run from the repository root).
R=bench/results/2026-12-06-cpu-train
for d in Set5 Set14; do
  echo "\$ srx eval --dataset ../shared/data/benchmarks/$d --model default --scale 4 --json $R/default-x4.$d.json"
  nice -n 10 env PYTHONPATH=$PWD ${PYTHON:-.venv/bin/python} -m srx eval --dataset ../shared/data/benchmarks/$d \
    --model default --scale 4 --json $R/default-x4.$d.json
done
