#!/bin/sh
# Continue stage 1 (schedule shortened to 5000 iterations at iteration 730; see bench/results/2026-11-28-cpu-train/README.md)
cd "$(dirname "$0")/.."
exec nice -n 19 env OMP_WAIT_POLICY=PASSIVE .venv/bin/srx train --resume runs/default-x4-stage1 --iters 5000 --threads 2 "$@"
