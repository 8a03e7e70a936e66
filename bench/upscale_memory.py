"""Peak memory of `srx upscale` on a 4000x3000 image with --tile 256 (CPU), end to end.

Usage: python bench/upscale_memory.py OUTDIR [--weights CKPT] [--backend NAME] [--tile N]

Runs the real command in a fresh process, `srx upscale big.png -o out.png --tile 256
--json -` (default: the embedded paper SAFMN x4, dim 36, 8 blocks, backend auto), and
reads that process's peak resident set size (ru_maxrss = VmHWM) when it exits: decoding
the 4000x3000 PNG, every tile through the model, assembling the 16000x12000 output one
band at a time, encoding the PNG. The input is a seeded synthetic natural-looking
1000x750 image tiled 4x4 (made once in $TMPDIR/srx-upscale-memory). Appends one row per run
to OUTDIR/upscale_memory.json with the command, peak RSS, wall time, the 1-minute load
average before and after, and the command's own JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from portable import log, write_json

REPO = Path(__file__).resolve().parents[1]
WORK = Path(tempfile.gettempdir()) / "srx-upscale-memory"

# Prints the child's peak RSS at exit; the child runs `python -m srx ...` in-process.
WRAPPER = (
    "import atexit, resource, runpy, sys\n"
    "atexit.register(lambda: sys.stderr.write(f'PEAK_RSS_KB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n'))\n"
    "sys.argv = ['srx', *sys.argv[1:]]\n"
    "from srx.cli import main\n"
    "main()\n"
)


def big_image() -> Path:
    from PIL import Image

    from srx.bench.inputs import synthetic_image

    WORK.mkdir(exist_ok=True)
    big = WORK / "big_4000x3000.png"
    if not big.exists():
        tile = (synthetic_image(750, 1000, 7).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
        Image.fromarray(np.tile(tile, (4, 4, 1))).save(big)
    return big


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--tile", default="256")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    big = big_image()
    cmd = ["upscale", str(big), "-o", str(WORK / "out.png"), "--tile", args.tile, "--backend", args.backend]
    cmd += ["--device", "cpu", "--json", "-"]
    if args.weights:
        cmd += ["--weights", args.weights]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    before = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    peaks = [ln for ln in proc.stderr.splitlines() if ln.startswith("PEAK_RSS_KB=")]
    if proc.returncode != 0 or not peaks:
        raise SystemExit(f"srx upscale failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    from srx.bench.engine import versions
    from srx.runtime.device import device_info

    row = {
        "command": "srx " + " ".join(cmd),
        "input": "4000x3000 RGB 8-bit PNG",
        "peak_rss_mb": round(int(peaks[-1].split("=")[1]) / 1024.0, 1),
        "wall_seconds": round(wall, 1),
        "load_before": before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "result": json.loads(proc.stdout),
        "device": device_info("cpu"),
        "versions": versions(),
        "output_bytes": (WORK / "out.png").stat().st_size,
    }
    path = args.out / "upscale_memory.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    rows.append(row)
    write_json(path, rows)
    log(json.dumps({k: v for k, v in row.items() if k not in ("result", "device", "versions")}, indent=2))


if __name__ == "__main__":
    main()
