"""Which backend `srx upscale --backend auto` should pick on the CPU: wall time per backend.

Usage: python bench/upscale_backends.py OUTDIR [--repeats N] [--backends torch,onnxruntime]

Three jobs, each a fresh `srx upscale` process as a user runs it (start-up, model load,
ONNX export and sessions included), srx upscale's default network (no --weights):
* one 640x360 image, whole;
* a folder of four images of different sizes (256x256, 320x240, 500x375, 640x480), whole:
  a new input shape per image (a new onnxruntime session, a new fixed-size export);
* one 1280x720 image with --tile 256 (every crop has one shape).
Backends alternate within each repeat so that load from other jobs hits them alike; the
1-minute load average is recorded with every run. Outputs of the backends are compared
(max difference in 8-bit levels). Writes OUTDIR/upscale_backends.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from portable import log, write_json

REPO = Path(__file__).resolve().parents[1]
WORK = Path(tempfile.gettempdir()) / "srx-upscale-backends"


def make_inputs() -> dict[str, list[str]]:
    from PIL import Image

    from srx.bench.inputs import synthetic_image

    WORK.mkdir(exist_ok=True)

    def save(path: Path, w: int, h: int, seed: int) -> str:
        if not path.exists():
            Image.fromarray((synthetic_image(h, w, seed).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)).save(path)
        return str(path)

    folder = WORK / "folder"
    folder.mkdir(exist_ok=True)
    for i, (w, h) in enumerate([(256, 256), (320, 240), (500, 375), (640, 480)]):
        save(folder / f"img{i}.png", w, h, 10 + i)
    return {
        "one 640x360 image, whole": [save(WORK / "one.png", 640, 360, 1)],
        "four images of different sizes, whole": [str(folder)],
        "one 1280x720 image, --tile 256": [save(WORK / "hd.png", 1280, 720, 2), "--tile", "256"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--backends", default="torch,onnxruntime")
    args = ap.parse_args()
    backends = args.backends.split(",")
    jobs = make_inputs()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    rows = []
    for job, job_args in jobs.items():
        times: dict[str, list[float]] = {b: [] for b in backends}
        loads: list[list[float]] = []
        for rep in range(args.repeats):
            for b in backends:
                out = WORK / f"out_{b}"
                cmd = ["upscale", *job_args, "-o", str(out), "--backend", b, "--device", "cpu", "--overwrite"]
                loads.append([round(x, 2) for x in os.getloadavg()])
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "srx", *cmd], capture_output=True, text=True, env=env)
                dt = time.perf_counter() - t0
                if proc.returncode != 0:
                    raise SystemExit(f"{cmd} failed: {proc.stderr[-1500:]}")
                times[b].append(round(dt, 2))
                log(job, b, rep, f"{dt:.1f} s", loads[-1], flush=True)
        diff = max_level_difference([WORK / f"out_{b}" for b in backends])
        rows.append(
            {
                "job": job,
                "command": "srx upscale " + " ".join(job_args) + " -o OUT --backend B --device cpu",
                "wall_seconds": times,
                "median_seconds": {b: float(np.median(t)) for b, t in times.items()},
                "load_per_run": loads,
                "max_level_difference_between_backends": diff,
            }
        )
    from srx.bench.engine import versions

    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "repeats": args.repeats,
        "model": "srx upscale's default network (no --weights: the best shipped, team15 since 2026-11-28)",
        "versions": versions(),
        "rows": rows,
    }
    write_json(args.out / "upscale_backends.json", record)
    for r in rows:
        log(r["job"], r["median_seconds"], "max level diff", r["max_level_difference_between_backends"])


def max_level_difference(folders: list[Path]) -> int:
    from PIL import Image

    worst = 0
    for p in sorted(folders[0].iterdir()):
        a = np.asarray(Image.open(p), dtype=np.int32)
        for other in folders[1:]:
            b = np.asarray(Image.open(other / p.name), dtype=np.int32)
            worst = max(worst, int(np.abs(a - b).max()))
    return worst


if __name__ == "__main__":
    main()
