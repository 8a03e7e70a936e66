#!/bin/sh
# srx eval of the shipped defaults (as a user runs it) and of bicubic, x2 and x3, Set5 and Set14.
# Run from the repository root; the shared data sits beside it.
R=bench/results/2026-12-06-cpu-train
for s in 2 3; do
  for d in Set5 Set14; do
    for m in default bicubic; do
      echo "\$ srx eval --dataset ../shared/data/benchmarks/$d --model $m --scale $s --json $R/$m-x$s.$d.json"
      nice -n 10 env PYTHONPATH=$PWD ${PYTHON:-.venv/bin/python} -m srx eval --dataset ../shared/data/benchmarks/$d \
        --model $m --scale $s --json $R/$m-x$s.$d.json
    done
  done
done
