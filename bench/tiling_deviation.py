"""How far tiled output is from whole-image output where tiling cannot be exact.

Usage: python bench/tiling_deviation.py OUTDIR   (needs ../shared weights and data)
Trained checkpoints, one real LR image cropped to an odd size (not a multiple of the
pooling grid) and to an aligned size; tiles of 64 with the default overlap. Reports the
max and mean absolute difference in 8-bit gray levels and the PSNR of tiled vs whole.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch


def main(out: Path) -> None:
    from srx.images import image_files, read_image
    from srx.models import load_model
    from srx.tiling import plan_tiling, tiled_apply

    shared = Path(os.environ.get("SRX_SHARED", "../shared"))
    img = read_image(image_files(shared / "data" / "real_lr")[0]).rgb
    rows = []
    for name in ("light_safmnpp.pth", "team23_safmnpp.pth", "team15_SAFMN.pth"):
        model = load_model(shared / "weights" / name)

        def fwd(x: np.ndarray, model=model) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()

        for h, w in ((203, 301), (192, 288)):
            lr = np.ascontiguousarray(img[:h, :w].transpose(2, 0, 1))
            whole = np.clip(fwd(lr[None])[0].transpose(1, 2, 0), 0, 1) * 255
            plan = plan_tiling(model.spec, h, w, 64, None)
            tiled = np.zeros_like(whole)

            def emit(y0: int, block: np.ndarray, tiled=tiled) -> None:
                tiled[y0 : y0 + block.shape[0]] = np.clip(block, 0, 1) * 255

            tiled_apply(lr, fwd, model.spec.scale, plan, emit)
            d = np.abs(tiled - whole)
            mse = float((d**2).mean())
            row = {
                "checkpoint": name,
                "input": f"{w}x{h}",
                **plan.to_dict(),
                "max_gray_levels": round(float(d.max()), 3),
            }
            row["mean_gray_levels"] = round(float(d.mean()), 4)
            row["psnr_db"] = None if mse == 0 else round(10 * math.log10(255**2 / mse), 2)
            rows.append(row)
            print(row, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tiling_deviation.json").write_text(
        json.dumps({"image": str(image_files(shared / "data" / "real_lr")[0].name), "rows": rows}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/cpu"))
