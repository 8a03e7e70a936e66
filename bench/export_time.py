"""Wall time of `srx export` end to end (process start to exit), and node counts.

Usage: python bench/export_time.py [--runs 3] [--out bench/results/export_time_cpu.json]

Each run is a fresh `python -m srx export` process (imports, build, simplify, verify at
320x180 + 97x61 batch 2 + the minimum size, write), as a user runs it. The machine's
load average and the process's CPU time (user + system) are recorded next to every
run: on a shared CPU they explain slow wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from portable import log, write_json

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SRX_SHARED", REPO.parent / "shared"))


def run_export(args: list[str], folder: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "srx", "export", *args, "--json", "-"]
    load = os.getloadavg()[0]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder, check=False)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    d = json.loads(proc.stdout)
    return {
        "command": "srx export " + " ".join(args),
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "load_avg_1min_before": round(load, 2),
        "stages_seconds": d["seconds"],
        "nodes_before_simplify": d["nodes_before_simplify"],
        "nodes": d["nodes"],
        "onnx_bytes": d["onnx_bytes"],
        "verify": d["verify"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "export_time_cpu.json"))
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(a.runs):
            rows.append(run_export(["--scale", "4"], folder))
            r = rows[-1]
            log(r["command"], r["wall_seconds"], "s wall,", r["cpu_seconds"], "s CPU, load", r["load_avg_1min_before"])
        others = [["--scale", "2"], ["--scale", "3"], ["--static", "--scale", "4"]]
        for name, key in (
            ("team15_SAFMN.pth", None),
            ("team23_safmnpp.pth", "params_ema"),
            ("light_safmnpp.pth", None),
        ):
            if (SHARED / "weights" / name).is_file():
                others.append(["--weights", str(SHARED / "weights" / name), *(["--param-key", key] if key else [])])
        for args in others:
            rows.append(run_export(args, folder))
            log(rows[-1]["command"], rows[-1]["wall_seconds"], "s, nodes", rows[-1]["nodes"])
    result = {
        "what": "srx export wall time (fresh process) and node counts",
        "script": "bench/export_time.py",
        "device": {
            "cpu": _cpu_name(),
            "logical_cpus": os.cpu_count(),
            "note": "CPU shared with other jobs; see load_avg_1min_before per run",
        },
        "versions": {
            "python": platform.python_version(),
            **{p: version(p) for p in ("torch", "onnx", "onnxruntime", "onnxslim", "numpy")},
        },
        "rows": rows,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(Path(a.out), result)
    log("wrote", a.out)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
