"""TensorRT-RTX engine build time on this machine (ahead of time, CPU), per model and precision.

Usage: python bench/engine_build_time.py OUTDIR [--repeats 3]

Models: the embedded paper SAFMN x4 (random weights), team15 and team23 x4 (trained).
Precisions: FP32, FP16 (srx FP16 pass) and INT8 (a Q/DQ ONNX made once by
`srx quantize` with its defaults, calibrated on ../shared/data/train, so the timed part is
the build alone). Each build is repeated; the JSON keeps every time and the median.
Writes OUTDIR/build_time.json, OUTDIR/build_time.md, OUTDIR/environment.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from portable import log, write_json, write_text

SHARED = Path(os.environ.get("SRX_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="srx-build-"))

    import tensorrt_rtx

    from srx import __version__
    from srx.engines.build import engine_from_onnx
    from srx.export.model import onnx_from_model, simplify_onnx
    from srx.models import default_model, load_model
    from srx.precision.int8 import QuantSettings, quantize_file
    from srx.runtime.device import cpu_info

    env = {
        "command": " ".join([sys.executable, *sys.argv]),
        "srx": __version__,
        "tensorrt_rtx": tensorrt_rtx.__version__,
        "python": platform.python_version(),
        "cpu": cpu_info(),
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    write_json(args.out / "environment.json", env)
    models = {
        "paper-x4-random": lambda: default_model(4),
        "team15": lambda: load_model(SHARED / "weights" / "team15_SAFMN.pth"),
        "team23": lambda: load_model(SHARED / "weights" / "team23_safmnpp.pth", param_key="params_ema"),
    }
    rows = []
    for name, make in models.items():
        fp32 = work / f"{name}.onnx"
        fp32.write_bytes(simplify_onnx(onnx_from_model(make())).SerializeToString())
        t = time.perf_counter()
        quantize_file(fp32, SHARED / "data" / "train", work / f"{name}.int8.onnx", settings=QuantSettings())
        quantize_s = time.perf_counter() - t
        for prec in ("fp32", "fp16", "int8"):
            src = work / f"{name}.int8.onnx" if prec == "int8" else fp32
            times, size = [], 0
            for i in range(args.repeats):
                r = engine_from_onnx(
                    src, work / f"{name}.{prec}.{i}.engine", precision=prec, backend="tensorrt-rtx"
                ).to_json()
                times.append(r["build_seconds"])
                size = r["engine_bytes"]
            row = {
                "model": name,
                "precision": prec,
                "build_seconds": times,
                "median_s": statistics.median(times),
                "engine_bytes": size,
                "quantize_seconds": round(quantize_s, 1) if prec == "int8" else None,
            }
            log(json.dumps(row), flush=True)
            rows.append(row)
    write_json(args.out / "build_time.json", {"environment": env, "rows": rows})
    lines = [
        f"| model | precision | build (median of {args.repeats}) | engine | INT8 calibration (srx quantize) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        q = f"{r['quantize_seconds']:.0f} s" if r["quantize_seconds"] is not None else "-"
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['median_s']:.2f} s | {r['engine_bytes'] / 2**20:.1f} MiB | {q} |"
        )
    write_text(args.out / "build_time.md", "\n".join(lines) + "\n")
    log("\n".join(lines))


if __name__ == "__main__":
    main()
