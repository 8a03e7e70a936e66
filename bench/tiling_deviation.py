"""How far tiled output is from whole-image output, with the trained checkpoints on real photos.

Usage: python bench/tiling_deviation.py OUTDIR [--tile 256] [--backend onnxruntime]
(needs the shared weights and data: $SRX_SHARED, default ../shared)

Two real LR photos from shared/data/real_lr, whole: 000.png (1164x655, not a multiple of
the pooling grid: tiling cannot be exact) and 003.png (1280x720, a multiple of 8 and 16:
exact for SAFMN++ and light SAFMN++, not for the NTIRE 2023 SAFMN whose GRN normalises
over the whole image). Each checkpoint upscales each photo whole and tiled (`--tile`,
default overlap, the plan `srx upscale` makes) with the same runner; both outputs are
clipped to [0, 1] and scaled to 8-bit levels (not rounded). Reports max, 99.9th
percentile and mean |tiled - whole| in gray levels, the share of output values that
would round to a different 8-bit level, and the PSNR of tiled against whole. To tell a
seam from a spread-out difference, the mean |tiled - whole| is also reported separately
inside the cross-fade bands around tile borders and everywhere else.
Writes OUTDIR/tiling_deviation.json.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
from portable import log, write_json

CHECKPOINTS = ("light_safmnpp.pth", "team23_safmnpp.pth", "team15_SAFMN.pth")
IMAGES = ("000.png", "003.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--backend", default="onnxruntime")
    args = ap.parse_args()

    from srx.bench.engine import versions
    from srx.images import read_image
    from srx.models import load_model
    from srx.runtime import ModelSource, open_runner
    from srx.tiling import plan_tiling, tiled_apply

    shared = Path(os.environ.get("SRX_SHARED", "../shared"))
    rows = []
    for name in CHECKPOINTS:
        model = load_model(shared / "weights" / name)
        with ModelSource.from_module(model, origin=name) as src, open_runner(args.backend, src, "cpu") as runner:
            for image in IMAGES:
                rgb = read_image(shared / "data" / "real_lr" / image).rgb
                h, w = rgb.shape[:2]
                lr = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
                t0 = time.perf_counter()
                whole = np.clip(runner.run(lr[None])[0].transpose(1, 2, 0), 0, 1) * 255
                t1 = time.perf_counter()
                plan = plan_tiling(model.spec, h, w, args.tile, None)
                tiled = np.zeros_like(whole)

                def emit(y0: int, block: np.ndarray, tiled: np.ndarray = tiled) -> None:
                    tiled[y0 : y0 + block.shape[0]] = np.clip(block, 0, 1) * 255

                n_tiles = tiled_apply(lr, runner.run, model.spec.scale, plan, emit)
                t2 = time.perf_counter()
                d = np.abs(tiled.astype(np.float64) - whole)
                mse = float((d**2).mean())
                row = {
                    "checkpoint": name,
                    "arch": model.spec.arch,
                    "image": image,
                    "input": f"{w}x{h}",
                    "tiles": n_tiles,
                    **plan.to_dict(),
                    "max_gray_levels": round(float(d.max()), 4),
                    "p99_9_gray_levels": round(float(np.percentile(d, 99.9)), 4),
                    "mean_gray_levels": round(float(d.mean()), 5),
                    "changed_8bit_values_pct": round(
                        100.0 * float(np.mean(np.rint(tiled) != np.rint(whole))),
                        4,
                    ),
                    "psnr_db": None if mse == 0 else round(10 * math.log10(255**2 / mse), 2),
                    "seconds_whole": round(t1 - t0, 1),
                    "seconds_tiled": round(t2 - t1, 1),
                }
                if plan.tile is not None:
                    band = seam_mask(h, w, model.spec.scale, plan.tile, max(plan.blend // 2, 1))
                    row["mean_gray_levels_at_tile_borders"] = round(float(d[band].mean()), 5)
                    row["mean_gray_levels_elsewhere"] = round(float(d[~band].mean()), 5)
                rows.append(row)
                log(row, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "command": f"python bench/tiling_deviation.py {args.out} --tile {args.tile} --backend {args.backend}",
        "images": {i: f"shared/data/real_lr/{i}" for i in IMAGES},
        "backend": args.backend,
        "versions": versions(),
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
    }
    write_json(args.out / "tiling_deviation.json", record)


def seam_mask(h: int, w: int, scale: int, tile: int, half_blend: int) -> np.ndarray:
    """Output pixels within `half_blend` LR pixels of an inner tile border, (sH, sW, 1)."""

    def near(n: int) -> np.ndarray:
        x = (np.arange(n * scale) + 0.5) / scale
        borders = np.arange(tile, n, tile)
        if borders.size == 0:
            return np.zeros(n * scale, bool)
        return np.abs(x[:, None] - borders[None, :]).min(axis=1) < half_blend

    return (near(h)[:, None] | near(w)[None, :])[..., None].repeat(3, axis=2)


if __name__ == "__main__":
    main()
