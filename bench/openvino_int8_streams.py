"""Does OpenVINO run an INT8 Q/DQ model correctly with its THROUGHPUT hint (several streams)?

Usage: python bench/openvino_int8_streams.py OUT.json [--processes 14]

Each try is a fresh process (the wrong results showed up in a process's first runs): a small
random-weight SAFMN exported and quantized by srx (tests/onnx_models.py, the same settings as
tests/test_runtime_openvino.py), a batch of two 27x31 images run by onnxruntime and by
OpenVINO (f32 and bf16 inference precision) with the LATENCY hint (one request of 2) and the
THROUGHPUT hint (2 requests in flight). A run is wrong when it is more than 0.1 away from
onnxruntime's output (the right ones are within 0.02).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from portable import write_json

REPO = Path(__file__).resolve().parents[1]

ONE_TRY = """
import json, sys, tempfile
from pathlib import Path
import numpy as np, onnx
sys.path.insert(0, {repo!r})
from tests.test_runtime_openvino import _int8_file
from tests.onnx_models import natural_batch
from srx.runtime import ModelSource, open_runner
x = natural_batch(27, 31, batch=2, seed=5)
out = {{}}
with tempfile.TemporaryDirectory() as tmp:
    path = _int8_file(Path(tmp))
    with ModelSource.from_file(path) as src:
        with open_runner("onnxruntime", src, "cpu") as r:
            ref = r.run(x)
        for hint in ("latency", "throughput"):
            for precision, backend in (("f32", "openvino"), ("bf16", "openvino-bf16")):
                with open_runner(backend, src, "cpu", hint=hint) as r:
                    out[f"{{hint}} {{precision}}"] = float(np.abs(r.run(x) - ref).max())
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--processes", type=int, default=14)
    a = ap.parse_args()
    tries = []
    for _ in range(a.processes):
        done = subprocess.run([sys.executable, "-c", ONE_TRY.format(repo=str(REPO))], capture_output=True, text=True)
        tries.append(json.loads(done.stdout.strip().splitlines()[-1]))
    wrong = {k: sum(t[k] > 0.1 for t in tries) for k in tries[0]}
    write_json(a.out, {"processes": a.processes, "wrong_runs": wrong, "max_abs_diff_per_try": tries})
    print(json.dumps(wrong))


if __name__ == "__main__":
    main()
