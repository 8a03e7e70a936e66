"""CPU speed of srx's backends on the embedded default model (paper SAFMN x4) at 320x180.

Usage: python bench/cpu_speed.py OUTDIR
Writes OUTDIR/bench.json and bench.txt (the `srx bench` protocol: torch and onnxruntime,
20 timed runs after 2 warm-up), OUTDIR/ort_sweep.json (onnxruntime session settings) and
OUTDIR/environment.json (versions, CPU flags, load average, how the ONNX was made).

The ONNX comes from srx.export when this build has it; otherwise from PyTorch's TorchScript
exporter with dynamic batch/height/width (exact here because srx's layers switch to their
portable pooling / resize forms while exporting), recorded in environment.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def make_onnx(model, path: Path) -> str:
    try:
        from srx.export import onnx_from_model  # noqa: F401
    except ImportError:
        import torch

        x = torch.rand(1, 3, 180, 320)
        dyn = {"lr": {0: "batch", 2: "height", 3: "width"}, "sr": {0: "batch", 2: "out_h", 3: "out_w"}}
        torch.onnx.export(
            model,
            (x,),
            str(path),
            input_names=["lr"],
            output_names=["sr"],
            opset_version=17,
            dynamo=False,
            dynamic_axes=dyn,
        )
        return "torch.onnx.export (TorchScript exporter), opset 17, dynamic batch/height/width (srx.export not in this build)"
    from srx.runtime.source import ModelSource

    src = ModelSource.from_module(model)
    p = src.onnx_path()
    path.write_bytes(p.read_bytes())
    return "srx.export.onnx_from_model, dynamic batch/height/width"


def main(out: Path) -> None:
    from srx.bench.engine import BenchConfig, run_bench, versions
    from srx.bench.inputs import synthetic_inputs
    from srx.bench.report import format_table
    from srx.models import default_model
    from srx.runtime import ModelSource, open_runner
    from srx.runtime.device import device_info

    out.mkdir(parents=True, exist_ok=True)
    model = default_model(4)
    onnx_path = out / "safmn_x4_default.onnx"
    how = make_onnx(model, onnx_path)
    env = {
        "command": " ".join([sys.executable, *sys.argv]),
        "onnx": how,
        "device": device_info("cpu"),
        "versions": versions(),
        "lscpu": subprocess.run(["lscpu"], capture_output=True, text=True).stdout,
        "load_average_start": os.getloadavg(),
    }

    source = ModelSource(model.spec, module=model, onnx_path=onnx_path, origin="embedded default x4")
    t0 = time.perf_counter()
    result = run_bench(source, BenchConfig(180, 320, "cpu", ["torch", "onnxruntime"]), command=env["command"].split())
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    result["onnx"] = how
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "bench.txt").write_text(format_table(result) + f"\n\nwall time {result['wall_seconds']} s\n")
    print(format_table(result), flush=True)

    # onnxruntime session settings: graph optimisation level x shape specialisation x threads.
    inputs = synthetic_inputs(180, 320, 12)
    with open_runner("torch", source) as r:
        ref = r.run(inputs[0])
    sweep = []
    configs = [(lvl, spec, None) for lvl in ("basic", "extended", "all") for spec in (False, True)]
    configs.append(("all", True, 1))
    for level, specialize, threads in configs:
        opts = {"opt_level": level, "specialize": specialize, **({"threads": threads} if threads else {})}
        with open_runner("onnxruntime", source, **opts) as r:
            t1 = time.perf_counter()
            y = r.run(inputs[0])
            first = time.perf_counter() - t1
            times = []
            for x in inputs[1:]:
                t1 = time.perf_counter()
                r.execute(x)
                times.append((time.perf_counter() - t1) * 1000)
            row = {**r.describe(), "first_run_s": round(first, 3), "median_ms": round(float(np.median(times)), 2)}
            row["min_ms"] = round(float(np.min(times)), 2)
            row["max_abs_diff_vs_torch"] = float(np.abs(y - ref).max())
        sweep.append(row)
        print(row, flush=True)
    env["load_average_end"] = os.getloadavg()
    (out / "ort_sweep.json").write_text(json.dumps(sweep, indent=2) + "\n")
    (out / "environment.json").write_text(json.dumps(env, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/cpu"))
