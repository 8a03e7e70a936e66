"""Peak memory of `srx upscale` on a 4000x3000 image with --tile 256 (CPU).

Usage: python bench/upscale_memory.py OUTDIR
Two measurements, each in a fresh process (peak RSS = ru_maxrss of the child):
1. the whole pipeline (decode, tiles, band assembly, x4 output of 16000x12000, PNG
   encode) with a tiny SAFMN (dim 8, 1 block) so it finishes in minutes: this is the
   memory that grows with the image;
2. one tile of the paper model (dim 36, 8 blocks): the largest crop the plan feeds it
   (256 + 2 * 136 = 528 pixels square), which is what the model adds on top.
Writes OUTDIR/upscale_memory.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WRAPPER = (
    "import atexit, resource, runpy, sys\n"
    "atexit.register(lambda: sys.stderr.write(f'PEAK_RSS_KB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n'))\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__') if sys.argv[0].endswith('.py') else "
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)


def child_peak_mb(args: list[str]) -> tuple[float, float, str]:
    """Run `python -m MODULE args` or `python SCRIPT.py args` in a fresh process; its own peak RSS (VmHWM)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True)
    dt = time.perf_counter() - t0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("PEAK_RSS_KB=")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(proc.stderr[-2000:])
    return int(lines[-1].split("=")[1]) / 1024.0, dt, proc.stdout


def main(out: Path) -> None:
    import torch
    from PIL import Image

    from srx.bench.inputs import synthetic_image
    from srx.models import build_model

    out.mkdir(parents=True, exist_ok=True)
    work = Path("/tmp/srx-upscale-memory")
    work.mkdir(exist_ok=True)
    big = work / "big_4000x3000.png"
    if not big.exists():
        tile = (synthetic_image(750, 1000, 7).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
        Image.fromarray(np.tile(tile, (4, 4, 1))).save(big)
    tiny = work / "tiny_x4.pth"
    torch.save({"params": build_model("safmn", 4, dim=8, n_blocks=1).state_dict()}, tiny)
    record = {}
    cmd = ["srx", "upscale", str(big), "-o", str(work / "out.png"), "--weights", str(tiny)]
    cmd += ["--tile", "256", "--backend", "torch", "--device", "cpu", "--json", "-"]
    peak, dt, stdout = child_peak_mb(cmd)
    record["pipeline_tiny_model"] = {"command": " ".join(cmd), "peak_rss_mb": round(peak, 1), "seconds": round(dt, 1)}
    record["pipeline_tiny_model"]["result"] = json.loads(stdout)
    script = work / "one_tile.py"
    script.write_text(
        "import torch\nfrom srx.models import default_model\nm = default_model(4)\n"
        "with torch.inference_mode():\n    m(torch.rand(1, 3, 528, 528))\n"
    )
    peak2, dt2, _ = child_peak_mb([str(script)])
    record["paper_model_one_528_tile"] = {"peak_rss_mb": round(peak2, 1), "seconds": round(dt2, 1)}
    (out / "upscale_memory.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "pipeline_tiny_model"}, indent=2))
    print(
        "pipeline peak MB",
        record["pipeline_tiny_model"]["peak_rss_mb"],
        "seconds",
        record["pipeline_tiny_model"]["seconds"],
    )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/cpu"))
