"""srx on the CPU with OpenVINO: `srx bench` at 320x180 x4, and latency vs throughput hints.

Usage: python bench/openvino_cpu.py OUTDIR --int8 MODEL.int8.onnx [--runs 10] [--rounds 5]
                                     [--bench-rounds 1]

  1. `srx bench --input 320x180` (the default CPU set: torch, torch-compile, onnxruntime,
     openvino, openvino-bf16; openvino-int8 is listed as skipped without an INT8 file);
  2. `srx bench --input 320x180 --weights default --model MODEL.int8.onnx` with torch,
     torch-compile and every ONNX backend: the INT8 rows against torch.compile in one run;
  3. batch 4 at 320x180 through the runners: OpenVINO's LATENCY hint (one request of 4
     images) against its THROUGHPUT hint (4 requests in flight), in BF16 (FP32 on a CPU
     without BF16), and the INT8 file (one request: srx runs INT8 so), interleaved over
     --rounds rounds with torch.compile (one call of batch 4) as the peer.
Writes OUTDIR/bench_default.{txt,json}, bench_int8.{txt,json}, hints.json, environment.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from machine import load, write_environment
from portable import portable, write_json, write_text


def bench(out: Path, name: str, *args: str) -> None:
    cmd = [sys.executable, "-m", "srx", "bench", "--input", "320x180", *args, "--json", str(out / f"{name}.json")]
    before = load()
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True)
    text = f"$ srx {' '.join(cmd[3:])}\n# load before {before}, after {load()}; {time.time() - t0:.0f} s\n{done.stdout}"
    write_text(out / f"{name}.txt", portable(text + done.stderr))
    print(portable(text), flush=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)


def hints(out: Path, int8: Path, rounds: int) -> None:
    from srx.bench.inputs import synthetic_image
    from srx.runtime import ModelSource, open_runner
    from srx.runtime.registry import check_backend

    x = np.stack([synthetic_image(180, 320, seed) for seed in range(4)])
    net = ModelSource.from_weights("default")
    q = ModelSource.from_options("default", str(int8))
    # BF16 where the CPU has it (the fastest floating-point row), FP32 elsewhere. An INT8
    # file always runs one request at a time (OpenVINO 2026.4 ran it wrongly with several
    # streams), so it has one row.
    fp = "openvino-bf16" if check_backend("openvino-bf16", "cpu", net).ok else "openvino"
    runners = {
        "torch-compile batch 4": open_runner("torch-compile", net, "cpu"),
        f"{fp} latency (1 request of 4)": open_runner(fp, net, "cpu", hint="latency"),
        f"{fp} throughput (4 in flight)": open_runner(fp, net, "cpu", hint="throughput"),
        "openvino-int8 (1 request of 4)": open_runner("openvino-int8", q, "cpu"),
    }
    times: dict[str, list[float]] = {k: [] for k in runners}
    for r in runners.values():
        r.activate()
        r.run(x)  # compiles (torch.compile, OpenVINO) outside the timing
    for _ in range(rounds):
        for name, r in runners.items():
            t0 = time.perf_counter()
            r.execute(r.stage(x))
            times[name].append((time.perf_counter() - t0) * 1000)
    for r in runners.values():
        r.deactivate()
    peer = float(np.median(times["torch-compile batch 4"]))
    rows = {
        k: {"median_ms": float(np.median(v)), "min_ms": min(v), "fps": 4000 / float(np.median(v)),
            "vs_torch_compile": peer / float(np.median(v)), "ms": v}
        for k, v in times.items()
    }  # fmt: skip
    write_json(
        out / "hints.json", {"batch": 4, "input": "320x180", "rounds": rounds, "load_after": load(), "rows": rows}
    )
    for k, r in rows.items():
        print(
            f"{k:42s} median {r['median_ms']:7.1f} ms  {r['fps']:5.2f} fps  {r['vs_torch_compile']:.2f}x torch.compile"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--int8", type=Path, required=True, help="the Q/DQ ONNX of the default model (srx quantize)")
    ap.add_argument("--runs", default="10")
    ap.add_argument("--bench-rounds", default="1", help="srx bench --rounds (1: one backend after the other)")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    write_environment(a.out, "python bench/openvino_cpu.py " + " ".join(sys.argv[1:]))
    timing = ("--runs", a.runs, "--rounds", a.bench_rounds)
    bench(a.out, "bench_default", *timing)
    backends = "torch,torch-compile,onnxruntime,openvino,openvino-bf16,openvino-int8"
    bench(a.out, "bench_int8", "--weights", "default", "--model", str(a.int8), "--backends", backends, *timing)
    hints(a.out, a.int8, a.rounds)
    print(json.dumps({"load_after": load()}))


if __name__ == "__main__":
    main()
