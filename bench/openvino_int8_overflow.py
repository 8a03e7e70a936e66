"""Why `srx quantize --weight-bits 7` exists: OpenVINO's INT8 kernels on a CPU without VNNI.

Usage: python bench/openvino_int8_overflow.py OUTDIR --int8 MODEL.int8.onnx --int8-7bit MODEL.int8.onnx

Runs each Q/DQ file (8-bit and 7-bit weights, the default x4's) in openvino-int8 twice: as
srx runs it on this CPU, and with OpenVINO's INT8 kernels forced (srx's CPU rule,
`int8_kernels_exact`, patched to yes), on the top-left 320x180 of each Set14 image that
has one, against onnxruntime's reading of the same file. Writes OUTDIR/overflow.json and
prints one line per row: the largest |difference| on [0, 1] and the compiled convolution
precisions (u8: OpenVINO's INT8 kernels).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from portable import write_json

SHARED = Path(os.environ.get("SRX_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def crops() -> list[np.ndarray]:
    from srx.filekinds import image_files
    from srx.images import read_image

    out = []
    for path in image_files(SHARED / "data/benchmarks/Set14/HR"):
        img = read_image(path).rgb
        if img.shape[0] >= 180 and img.shape[1] >= 320:
            out.append(np.ascontiguousarray(img[:180, :320].transpose(2, 0, 1)[None], dtype=np.float32))
    return out


def run(path: Path, forced: bool, images: list[np.ndarray]) -> dict:
    import srx.runtime.openvino_runner as ovr
    from srx.runtime import ModelSource, open_runner

    rule = ovr.int8_kernels_exact
    if forced:
        ovr.int8_kernels_exact = lambda weight_max: True  # type: ignore[assignment]
    try:
        with ModelSource.from_file(path) as source:
            with open_runner("onnxruntime", source, "cpu") as r:
                refs = [r.run(x) for x in images]
            with open_runner("openvino-int8", source, "cpu") as r:
                got = [r.run(x) for x in images]
                d = r.describe()
    finally:
        ovr.int8_kernels_exact = rule  # type: ignore[assignment]
    diffs = [float(np.abs(a - b).max()) for a, b in zip(got, refs, strict=True)]
    return {
        "int8_weight_max": d["graph_rewrite"]["int8_weight_max"],
        "int8_kernels_forced": forced,
        "convolution_precisions": d["convolution_precisions"],
        "max_abs_diff_vs_onnxruntime": max(diffs),
        "per_image": diffs,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--int8", type=Path, required=True)
    ap.add_argument("--int8-7bit", type=Path, required=True)
    a = ap.parse_args()
    from srx.runtime.device import cpu_info

    images = crops()
    rows = {}
    for label, path in (("8-bit weights", a.int8), ("7-bit weights", a.int8_7bit)):
        for forced in (False, True):
            name = f"{label}, {'INT8 kernels forced' if forced else 'as srx runs it'}"
            rows[name] = run(path, forced, images)
            r = rows[name]
            print(f"{name:40s} max |diff| {r['max_abs_diff_vs_onnxruntime']:.4f}  {r['convolution_precisions']}")
    write_json(a.out / "overflow.json", {"cpu_flags": cpu_info()["flags"], "images": len(images), "rows": rows})


if __name__ == "__main__":
    main()
