#!/bin/sh
# Continue stage 2 from its last checkpoint (iteration 250; the session that started it ended)
cd "$(dirname "$0")/.."
exec nice -n 19 env OMP_WAIT_POLICY=PASSIVE .venv/bin/srx train --resume runs/default-x4-stage2 --iters 4000 --threads 2 "$@"
