"""Why a TensorRT-RTX INT8 engine of team15 is larger than its FP32 engine (issue 16, point 13).

Usage: python bench/engine_size.py OUTDIR

Builds team15 x4 (../shared/weights) ahead of time on the CPU with TensorRT-RTX:
* FP32, FP16 and INT8 (a Q/DQ ONNX from `srx quantize`, small calibration settings), for
  the default compute-capability targets and for 8.9 alone: does the size follow the targets?
* Q/DQ variants of the same graph: every scale 1.0 with 1, 14, 28 or all convolutions in
  INT8, and with the layers `srx quantize` kept in FP16; and the calibrated scales with
  every convolution in INT8: does the size follow the weights, the INT8 layers or the scales?
Writes OUTDIR/engine_size.json, OUTDIR/engine_size.md, OUTDIR/environment.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from portable import log, write_json, write_text

SHARED = Path(os.environ.get("SRX_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="srx-engine-size-"))

    import tensorrt_rtx

    from srx import __version__
    from srx.engines.build import engine_from_onnx
    from srx.export.metadata import read_srx_onnx, srx_onnx_from_model
    from srx.export.model import onnx_from_model, simplify_onnx
    from srx.models import load_model
    from srx.precision import int8 as Q
    from srx.precision.fp16 import fp16_from_onnx
    from srx.progress import Progress
    from srx.runtime.device import cpu_info

    write_json(args.out / "environment.json", {
        "command": " ".join([sys.executable, *sys.argv]), "srx": __version__,
        "tensorrt_rtx": tensorrt_rtx.__version__, "python": platform.python_version(), "cpu": cpu_info(),
        "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    })  # fmt: skip
    fp32 = work / "team15.onnx"
    fp32.write_bytes(
        simplify_onnx(onnx_from_model(load_model(SHARED / "weights" / "team15_SAFMN.pth"))).SerializeToString()
    )
    qdq = work / "team15.int8.onnx"
    settings = Q.QuantSettings(calibration_images=16, held_out_images=2, sensitivity_crops=4)
    kept = Q.quantize_file(fp32, SHARED / "data" / "train", qdq, settings=settings).report.kept_layers
    log(f"srx quantize kept in FP16: {kept}")

    rows = []

    def build(name: str, onnx_path: Path, **options: object) -> None:
        r = engine_from_onnx(
            onnx_path, work / f"{name}.engine", backend="tensorrt-rtx", overwrite=True, **options
        ).to_json()
        built_from = Path(r["precision_onnx"] or onnx_path)  # the FP16 ONNX the build wrote, or the given one
        weights = sum(len(t.raw_data) for t in read_srx_onnx(built_from, keep_model=True).graph().graph.initializer)
        rows.append({"engine": name, "engine_bytes": r["engine_bytes"], "onnx_weight_bytes": weights, **options})
        log(f"{name}: {r['engine_bytes'] / 2**20:.2f} MiB engine, {weights / 2**20:.2f} MiB of weights in the ONNX")

    for targets in (None, ["8.9"]):
        suffix = "default-targets" if targets is None else "sm89"
        build(f"fp32-{suffix}", fp32, precision="fp32", rtx_targets=targets)
        build(f"fp16-{suffix}", fp32, precision="fp16", rtx_targets=targets)
        build(f"int8-calibrated-{suffix}", qdq, rtx_targets=targets)

    base = Q.upgrade_opset(read_srx_onnx(fp32, keep_model=True).graph(), Q.MIN_FP16_QDQ_OPSET)
    sites = Q.conv_sites(base)
    unit = {s.act: 1.0 for s in sites}
    # The ranges `srx quantize` chose: the same crops (same seed) through the same search.
    spec = read_srx_onnx(fp32).spec
    data = Q._load_data(spec.scale, spec.min_size, SHARED / "data" / "train", settings, Progress.off())
    calibrated = Q.collect_ranges(base, sorted(unit), data.calib, method=settings.method, seed=settings.seed)
    variants = {f"int8-unit-scales-{k}-of-{len(sites)}": (unit, {s.layer for s in sites[:k]}) for k in (1, 14, 28)}
    variants[f"int8-unit-scales-{len(sites)}-of-{len(sites)}"] = (unit, {s.layer for s in sites})
    variants["int8-unit-scales-quantize-kept"] = (unit, {s.layer for s in sites} - set(kept))
    variants[f"int8-calibrated-{len(sites)}-of-{len(sites)}"] = (calibrated, {s.layer for s in sites})
    for name, (ranges, chosen) in variants.items():
        m = Q.qdq_model(base, sites, ranges, chosen, fp16_scales=True)
        path = work / f"{name}.onnx"
        path.write_bytes(fp16_from_onnx(srx_onnx_from_model(m))[0].graph().SerializeToString())
        build(name, path)

    write_json(args.out / "engine_size.json", {"kept_by_quantize": kept, "rows": rows})
    lines = ["| engine | targets | engine | weights in its ONNX |", "| --- | --- | --- | --- |"]
    for r in rows:
        targets = ",".join(r.get("rtx_targets") or []) or "default"
        lines.append(f"| {r['engine']} | {targets} | {r['engine_bytes'] / 2**20:.2f} MiB | "
                     f"{r['onnx_weight_bytes'] / 2**20:.2f} MiB |")  # fmt: skip
    write_text(args.out / "engine_size.md", "\n".join(lines) + "\n")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
