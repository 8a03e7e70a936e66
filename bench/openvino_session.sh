#!/usr/bin/env bash
# Issue 21's acceptance run, in one command, for a session on a CPU with VNNI or AMX (the
# machine the issue names; every figure so far of 2026-12-07 is of an AVX2-only CPU):
#
#   bash bench/openvino_session.sh OUT      # from the repository root, with ../shared
#
# Each step runs under its own time limit and writes into OUT as it goes; a step whose
# result is already in OUT is skipped, so a run that was stopped goes on where it was.
#   1. openvino_accuracy.py: srx export, srx quantize (8-bit weights, --target-drop 0.015,
#      ../shared/data/train), srx eval Set5 / Set14 x4 for default and team15: torch FP32,
#      openvino, openvino-bf16, onnxruntime INT8, openvino-int8 -> accuracy.*, models/
#   2. the same for the default with --weight-bits 7 -> accuracy_w7.*, models/default.w7.int8.onnx
#   3. openvino_int8.py: srx bench on the FP32 network and both INT8 files, then the runners
#      interleaved with node times and convolution precisions -> int8/
#   4. openvino_cpu.py: srx bench's default CPU set (openvino-bf16 included where the CPU
#      has BF16), the INT8 rows, LATENCY vs THROUGHPUT at batch 4 -> default-set/
#   5. openvino_aggr_check.py and openvino_aggr_guard.py on the 8-bit file: is SAFM's
#      aggregation still read wrongly from a quantized input on this CPU, and does the
#      guard keep it right here (srx.runtime.openvino_graph) -> aggr_check.txt, aggr_guard.txt
#   6. openvino_ceiling.py: each OpenVINO row of step 3 split into convolutions and the rest
#      against the targets, and `srx bench --profile` on FP32 and the INT8 file that runs in
#      INT8 kernels here (8-bit with VNNI / AMX, else 7-bit) -> ceiling/
# Speed steps: RUNS (srx bench's timed runs, 20), BENCH_ROUNDS (srx bench --rounds, 5: the
# backends taking turns) and ROUNDS (the runners' interleaved rounds, 20).
set -u

out=${1:?usage: bash bench/openvino_session.sh OUT}
mkdir -p "$out"
out=$(cd "$out" && pwd)
log="$out/openvino_session.log"
py=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
runs=${RUNS:-20}
rounds=${ROUNDS:-20}
bench_rounds=${BENCH_ROUNDS:-5}
models="$out/models"

step() {  # step NAME SECONDS RESULT_FILE COMMAND...: skipped when RESULT_FILE exists
    local name=$1 limit=$2 result=$3
    shift 3
    if [ -e "$result" ]; then
        echo "== $name: skipped, $result is there" | tee -a "$log"
        return
    fi
    echo "== $name ($(date -u +%FT%TZ), at most ${limit} s): $*" | tee -a "$log"
    timeout "$limit" "$@" 2>&1 | tee -a "$log" | tail -25
    echo "== $name: exit ${PIPESTATUS[0]}" | tee -a "$log"
}

flags=$(grep -m1 -o -w -E 'avx512f|avx512_vnni|avx_vnni|avx512_bf16|amx_bf16|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')
{
    echo "== srx OpenVINO session $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "CPU flags: ${flags:-none of AVX-512, VNNI, BF16, AMX (openvino-bf16 is refused; INT8 kernels need 7-bit weights)}"
    echo "cores: $(nproc)"
    uptime
} 2>&1 | tee -a "$log"

step accuracy 5400 "$out/accuracy.json" \
    "$py" bench/openvino_accuracy.py "$out" --target-drop 0.015
step "accuracy, 7-bit weights" 2400 "$out/accuracy_w7.json" \
    "$py" bench/openvino_accuracy.py "$out" --models default --target-drop 0.015 --weight-bits 7 --label w7
if [ ! -f "$models/default.int8.onnx" ] || [ ! -f "$models/default.w7.int8.onnx" ]; then
    echo "== stopped: the INT8 files of steps 1-2 are missing (see the log)" | tee -a "$log"
    exit 1
fi
step "INT8 kernels" 2400 "$out/int8/interleaved.json" \
    "$py" bench/openvino_int8.py "$out/int8" --int8 "$models/default.int8.onnx" \
    --int8-7bit "$models/default.w7.int8.onnx" --runs "$runs" --rounds "$rounds" --bench-rounds "$bench_rounds"
step "default CPU set and hints" 2400 "$out/default-set/hints.json" \
    "$py" bench/openvino_cpu.py "$out/default-set" --int8 "$models/default.int8.onnx" --runs "$runs" \
    --bench-rounds "$bench_rounds"
step "aggregation check" 600 "$out/aggr_check.txt" \
    sh -c "'$py' bench/openvino_aggr_check.py '$models/default.int8.onnx' > '$out/aggr_check.txt.part' && mv '$out/aggr_check.txt.part' '$out/aggr_check.txt'"
step "aggregation guard" 900 "$out/aggr_guard.txt" \
    sh -c "'$py' bench/openvino_aggr_guard.py '$models/default.int8.onnx' --rounds '$rounds' > '$out/aggr_guard.txt.part' && mv '$out/aggr_guard.txt.part' '$out/aggr_guard.txt'"
case "$flags" in
    *vnni* | *amx_int8*) int8_kernels="$models/default.int8.onnx" ;;
    *) int8_kernels="$models/default.w7.int8.onnx" ;;
esac
step ceiling 1200 "$out/ceiling/ceiling.md" \
    "$py" bench/openvino_ceiling.py "$out/ceiling" --interleaved "$out/int8/interleaved.json" \
    --int8 "$int8_kernels" --runs "$runs"
echo "== done $(date -u +%FT%TZ)" | tee -a "$log"
