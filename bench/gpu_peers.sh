#!/usr/bin/env bash
# srx bench on a GPU (issue 13): the peers, the speed-up columns, --profile, --batch, and the
# torch-fp16 question. Written for a lent GPU machine with a 10-minute limit per command, so
# the steps are chosen on the command line and each one has its own time limit:
#
#   bash bench/gpu_peers.sh 1 2      # srx bench at 320x180 and 1280x720, --profile (~6 min on an H200)
#   bash bench/gpu_peers.sh 3 4      # --batch 4 at 320x180, bench/fp16_timing.py, torch-fp16 alone (~5 min)
#
# Output (raw, as printed, and the JSON) goes to $OUT when set (a device machine), else to
# bench/results/<date>-gpu/; commit it under bench/results/<date>-<gpu>/ with a README that
# says what ran where.
set -u
export PYTHONUNBUFFERED=1
O=${OUT:-bench/results/$(date -u +%F)-gpu}
mkdir -p "$O"
exec > >(tee -a "$O/gpu_peers.log") 2>&1
PY=${PYTHON:-python3}
echo "== env $(date -u +%FT%TZ) steps: $*"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total,power.limit --format=csv
$PY -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.backends.cudnn.version(), torch.cuda.get_device_name(0))"
$PY -c "import triton; print('triton', triton.__version__)" || true
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo 'unknown (no git here)')"
for step in "$@"; do
  case $step in
    1) echo "== 1 srx bench --device cuda --input 320x180 --profile"
       timeout 280 $PY -m srx bench --device cuda --input 320x180 --profile --json "$O/bench_320x180.json" --plot "$O/bench_320x180.png" ;;
    2) echo "== 2 srx bench --device cuda --input 1280x720 --runs 30 --profile"
       timeout 280 $PY -m srx bench --device cuda --input 1280x720 --runs 30 --profile --json "$O/bench_1280x720.json" ;;
    3) echo "== 3 srx bench --device cuda --input 320x180 --batch 4"
       timeout 150 $PY -m srx bench --device cuda --input 320x180 --batch 4 --json "$O/bench_320x180_b4.json" ;;
    4) echo "== 4 bench/fp16_timing.py, then torch-fp16 alone in srx bench (nothing measured before it)"
       timeout 150 $PY bench/fp16_timing.py --out "$O"
       timeout 60 $PY -m srx bench --device cuda --input 320x180 --backends torch-fp16 --json "$O/bench_fp16_alone.json" ;;
    *) echo "unknown step $step (1-4)" ;;
  esac
  echo "== step $step exit $?"
done
echo "== done $(date -u +%FT%TZ)"
