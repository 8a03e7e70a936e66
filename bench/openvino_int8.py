"""openvino-int8 in OpenVINO's INT8 kernels against torch.compile, on a CPU without VNNI too.

Usage: python bench/openvino_int8.py OUTDIR --int8 MODEL.int8.onnx --int8-7bit MODEL.int8.onnx
                                      [--runs 20] [--rounds 20] [--bench-rounds 1]

MODEL.int8.onnx files are the default x4's from `srx quantize` with 8-bit and with
`--weight-bits 7` weights. Every timed step runs in a quiet window (openvino_fp32.quiet):
  1. `srx bench --input 320x180` with --backends torch-compile,onnxruntime,openvino on the
     FP32 network: bench_fp32.{txt,json};
  2. the same with --model each INT8 file and --backends torch-compile,onnxruntime,
     openvino-int8: bench_int8_8bit.{txt,json}, bench_int8_7bit.{txt,json};
  3. through the runners, torch.compile timed alone first, then openvino (FP32) and
     openvino-int8 on both files interleaved over --rounds rounds (order reversed every
     other round), each OpenVINO row's compiled convolution precisions, its output against
     onnxruntime's reading of the same file, and OpenVINO's node times per kind:
     interleaved.json.
Also environment.json (versions, CPU flags, commit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from machine import write_environment
from openvino_fp32 import bench, node_kinds, peer_then_interleaved, quiet, warm_up
from portable import write_json


def interleaved(out: Path, files: dict[str, Path], rounds: int) -> None:
    from srx.bench.inputs import synthetic_image
    from srx.runtime import ModelSource, open_runner

    x = synthetic_image(180, 320, 0)[None]
    net = ModelSource.from_weights("default")
    peer = open_runner("torch-compile", net, "cpu")
    sources = {label: ModelSource.from_options("default", str(path)) for label, path in files.items()}
    runners = {"openvino (FP32)": open_runner("openvino", net, "cpu")}
    runners |= {f"openvino-int8 ({label})": open_runner("openvino-int8", s, "cpu") for label, s in sources.items()}
    outputs = warm_up({"torch-compile": peer, **runners}, x)
    references = {}
    for label, s in sources.items():
        with open_runner("onnxruntime", s, "cpu") as r:
            references[f"openvino-int8 ({label})"] = r.run(x)
    record: dict = {}
    with quiet(record):
        times = peer_then_interleaved(peer, runners, x, rounds)
        nodes = {name: node_kinds(r, x) for name, r in runners.items()}
    described = {name: r.describe() for name, r in runners.items()}
    for r in [peer, *runners.values()]:
        r.deactivate()
    base = float(np.median(times["torch-compile"]))
    rows = {}
    for name, ms in times.items():
        d = described.get(name, {})
        rows[name] = {
            "median_ms": float(np.median(ms)),
            "min_ms": min(ms),
            "vs_torch_compile": base / float(np.median(ms)),
            "convolution_precisions": d.get("convolution_precisions"),
            "int8_convolutions": d.get("int8_convolutions"),
            "max_abs_diff_vs_onnxruntime_same_file": (
                float(np.abs(outputs[name] - references[name]).max()) if name in references else None
            ),
            "ms": ms,
        }
        print(f"{name:28s} median {rows[name]['median_ms']:7.1f} ms  {rows[name]['vs_torch_compile']:.2f}x torch.compile"
              f"  convolutions {rows[name]['convolution_precisions']}")  # fmt: skip
    for name, kinds in nodes.items():
        print(f"{name}: node times {sum(kinds.values()):.1f} ms per run; " + ", ".join(
            f"{k} {v:.1f}" for k, v in list(kinds.items())[:6]))  # fmt: skip
    write_json(out / "interleaved.json", {
        "input": "320x180", "batch": 1, "rounds": rounds, "quiet_window": record, "rows": rows,
        "node_ms_per_run": nodes,
    })  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--int8", type=Path, required=True, help="srx quantize's file with 8-bit weights")
    ap.add_argument("--int8-7bit", type=Path, required=True, help="srx quantize --weight-bits 7's file")
    ap.add_argument("--runs", default="20")
    ap.add_argument("--bench-rounds", default="1", help="srx bench --rounds (1: one backend after the other)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--steps", default="bench,interleaved")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    write_environment(a.out, "python bench/openvino_int8.py " + " ".join(sys.argv[1:]))
    steps = a.steps.split(",")
    if "bench" in steps:
        timing = ("--runs", a.runs, "--rounds", a.bench_rounds)
        bench(a.out, "bench_fp32", "--backends", "torch-compile,onnxruntime,openvino", *timing)
        for label, path in (("8bit", a.int8), ("7bit", a.int8_7bit)):
            bench(a.out, f"bench_int8_{label}", "--weights", "default", "--model", str(path),
                  "--backends", "torch-compile,onnxruntime,openvino-int8", *timing)  # fmt: skip
    if "interleaved" in steps:
        interleaved(a.out, {"8-bit weights": a.int8, "7-bit weights": a.int8_7bit}, a.rounds)


if __name__ == "__main__":
    main()
