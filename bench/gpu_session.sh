#!/usr/bin/env bash
# One prepared GPU session for the fused kernels (issue 12): at most ~6 minutes, everything
# written under OUT as it goes, so a run cut short keeps what it measured.
#
#   bash bench/gpu_session.sh --prepare SHARED GPU_DATA   # here: copy team15 + Set5 into GPU_DATA (~2 MB)
#   bash bench/gpu_session.sh GPU_DATA [OUT]               # on the GPU machine, from the repository root
#
# GPU_DATA mirrors ../shared (weights/, data/benchmarks/Set5/HR/), so the tests that read
# ../shared run too (SRX_SHARED=GPU_DATA). Steps, each under its own time limit:
#   0. every kernel variant the benchmark and the tuning will launch, compiled into Triton's
#      cache in parallel on the machine's cores (a JIT compiles them one at a time);
#   1. the kernel tests compiled on the GPU (kernel tuning off: default configurations);
#   2. bench/kernels_bench.py: measured peaks, whole model against eager FP32, eager FP16
#      (+ CUDA graph), torch.compile reduce-overhead, srx fused FP16 / BF16 / FP32 modes at
#      320x180 and 1280x720, the per-kernel tuning sweep, batch 4, team15.
# Results: OUT/gpu_session.log, OUT/<date>-<gpu>/kernels.json and kernels.log; commit them
# under bench/results/ with the log (they name no machine paths).
set -u

if [ "${1:-}" = "--prepare" ]; then
    shared=${2:?usage: bench/gpu_session.sh --prepare SHARED GPU_DATA}
    dest=${3:?usage: bench/gpu_session.sh --prepare SHARED GPU_DATA}
    mkdir -p "$dest/weights" "$dest/data/benchmarks/Set5/HR"
    cp "$shared/weights/team15_SAFMN.pth" "$dest/weights/"
    cp "$shared"/data/benchmarks/Set5/HR/*.png "$dest/data/benchmarks/Set5/HR/"
    du -sh "$dest"
    exit 0
fi

data=${1:?usage: bench/gpu_session.sh GPU_DATA [OUT]}
out=${2:-${OUT:-bench/results}}
mkdir -p "$out"
log="$out/gpu_session.log"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 SRX_SHARED="$data"
py=${PYTHON:-python3}

{
    echo "== srx GPU session $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total,power.limit --format=csv
    "$py" -c "import sys, torch, triton; print(sys.version.split()[0], torch.__version__, torch.version.cuda, triton.__version__)"
} 2>&1 | tee -a "$log"

echo "== 0. compile the kernels into Triton's cache" | tee -a "$log"
timeout 60 "$py" bench/kernels_sm90.py --warm-cache 2>&1 | grep -v -e Warning -e warn_once | tail -3 | tee -a "$log"

echo "== 1. kernel tests compiled on the GPU" | tee -a "$log"
# The whole-model tests first (GPU gates, every FP32 mode at 320x180); the log keeps every
# line, so a run stopped by its limit still shows which tests passed and failed.
SRX_KERNEL_TUNING=off timeout 90 "$py" -m pytest -v -p no:cacheprovider -o addopts="" -rfs \
    tests/test_kernels_model.py tests/test_kernels.py 2>&1 | tee -a "$log" | tail -40

echo "== 2. benchmark" | tee -a "$log"
timeout 220 "$py" bench/kernels_bench.py --data "$data" --out "$out" --budget-s 200 2>&1 | tee -a "$log" | tail -60
echo "== done $(date -u +%FT%TZ)" | tee -a "$log"
