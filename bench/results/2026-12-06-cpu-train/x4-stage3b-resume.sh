#!/bin/sh
# 1.7 s/it: 1,200 iterations would not anneal within --max-minutes 25. Stopped in the warm-up
# (where both schedules agree) and resumed with --iters 800 and a new session budget.
exec nice -n 19 env OMP_WAIT_POLICY=PASSIVE PYTHONPATH=$PWD ${PYTHON:-.venv/bin/python} -m srx train \
  --resume runs/default-x4-stage3b --iters 800 --threads 1 --max-minutes 22
