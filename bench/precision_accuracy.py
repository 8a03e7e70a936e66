"""Accuracy of srx's FP16 and INT8 ONNX models against FP32, on CPU (onnxruntime).

Usage: python bench/precision_accuracy.py OUTDIR [--models team15,team23,default,NAME=CKPT] [--skip-1080p]

For each trained checkpoint (team15 = NTIRE 2023 SAFMN, team23 = SAFMN++):
  1. export the FP32 ONNX with srx.export (dynamic, opset 19, simplified);
  2. FP16: srx.precision.fp16 (FP32 normalisation islands);
     INT8: srx.precision.int8.quantize_file with the `srx quantize` defaults, calibrated on
     ../shared/data/train (T91 + BSD200) only; its held-out report goes to the JSON;
  3. score FP32, FP16 and INT8 on Set5 and Set14 with `srx eval`'s protocol
     (srx.evaluate: MATLAB bicubic LR, uint8 output, Y-PSNR/SSIM, 4-pixel border),
     each reduced-precision model read twice by onnxruntime's CPU provider:
     `ort_all` (default graph optimisations; ORT runs FP16 ops lacking FP16 kernels in FP32
     and may drop the casts between them) and `ort_disable` (no optimisations: every FP16
     op's output is rounded to FP16, the conservative reading);
     plus a naive INT8 baseline (every convolution INT8, max calibration, no selection);
  4. run every variant once on a 1920x1080 natural image (a real low-resolution photo from
     ../shared/data/real_lr, bicubic-resized) and count NaN / Inf.

Writes OUTDIR/results.json (everything, per image), OUTDIR/results.md (tables),
OUTDIR/environment.json (versions, CPU, command); stdout is the log. GPU numbers are not
measured here: TensorRT's FP16 kernels may round differently from onnxruntime's CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from portable import portable, write_json, write_text

SHARED = Path(os.environ.get("SRX_SHARED", Path(__file__).resolve().parents[2] / "shared"))
CHECKPOINTS = {
    "team15": ("team15_SAFMN.pth", None),
    "team23": ("team23_safmnpp.pth", "params_ema"),  # the key the upstream loader uses
}
DATASETS = ("Set5", "Set14")


def log(msg: str) -> None:
    print(portable(f"[{time.strftime('%H:%M:%S')}] {msg}"), flush=True)


def session(path: Path, level: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[level]
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def evaluate(path: Path, level: str, spec) -> dict:
    from srx.evaluate import ResolvedModel, evaluate_model, upscaler_from_runner

    sess = session(path, level)
    run = lambda x: sess.run(None, {"lr": x})[0]  # noqa: E731
    out = {}
    for ds in DATASETS:
        res = evaluate_model(
            SHARED / "data" / "benchmarks" / ds, ResolvedModel(path.name, 4, upscaler_from_runner(run), spec)
        )
        out[ds] = {
            "psnr_y": res.psnr_y,
            "ssim_y": res.ssim_y,
            "images": [{"name": s.name, "psnr_y": s.psnr_y, "ssim_y": s.ssim_y} for s in res.images],
        }
    return out


def big_input() -> np.ndarray:
    from PIL import Image

    from srx.imresize import imresize

    with Image.open(SHARED / "data" / "real_lr" / "003.png") as im:
        rgb = np.asarray(im.convert("RGB"))
    big = imresize(rgb, size=(1080, 1920))
    return np.ascontiguousarray(big.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def naive_int8(fp32: Path) -> bytes:
    """The naive recipe for comparison: every convolution INT8, ranges = observed max |x|,
    same calibration crops, FP16 elsewhere (srx.precision internals, no layer selection)."""
    from srx.export.metadata import read_srx_onnx, srx_onnx_from_model
    from srx.precision import int8 as Q
    from srx.precision.fp16 import fp16_from_onnx
    from srx.progress import Progress

    src = read_srx_onnx(fp32, keep_model=True)
    st = Q.QuantSettings()
    data = Q._load_data(src.spec.scale, src.spec.min_size, SHARED / "data" / "train", st, Progress.off())
    base = Q.upgrade_opset(src.model, Q.MIN_FP16_QDQ_OPSET)
    sites = Q.conv_sites(base)
    ranges = Q.collect_ranges(base, sorted({s.act for s in sites}), data.calib, method="max", seed=st.seed)
    qdq = Q.qdq_model(base, sites, ranges, {s.layer for s in sites}, fp16_scales=True)
    return fp16_from_onnx(srx_onnx_from_model(qdq))[0].model.SerializeToString()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def environment(argv: list[str]) -> dict:
    import onnx
    import onnxruntime
    import torch

    from srx import __version__
    from srx.runtime.device import cpu_info

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "command": " ".join([sys.executable, *argv]),
        "srx": __version__,
        "git_commit": commit,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "cpu": cpu_info(),
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "gpu": "none: GPU figures are not measured",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--models", default="team15,team23", help="team15, team23, default (shipped), or NAME=CKPT")
    ap.add_argument("--skip-1080p", action="store_true")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="srx-precision-"))  # the ONNX files; their sha256 go to results.json
    write_json(out / "environment.json", environment(sys.argv))

    from srx.export.metadata import read_srx_onnx
    from srx.export.model import onnx_from_model, simplify_onnx
    from srx.models import load_model
    from srx.precision.fp16 import fp16_from_onnx
    from srx.precision.int8 import QuantSettings, quantize_file
    from srx.progress import Progress

    results: dict = {"protocol": __doc__, "models": {}}
    for item in args.models.split(","):
        # team15 / team23: the shared checkpoints; NAME=PATH: any checkpoint (e.g. a QAT run);
        # otherwise a network srx ships (default).
        name, _, path = item.partition("=")
        if name in CHECKPOINTS and not path:
            ckpt, key = CHECKPOINTS[name]
            model = load_model(SHARED / "weights" / ckpt, param_key=key)
        else:
            ckpt, key = path or name, None
            model = load_model(ckpt)
        spec = model.spec
        paths = {"fp32": work / f"{name}.onnx", "fp16": work / f"{name}.fp16.onnx", "int8": work / f"{name}.int8.onnx"}
        log(f"{name}: export")
        paths["fp32"].write_bytes(simplify_onnx(onnx_from_model(model)).SerializeToString())
        log(f"{name}: FP16 pass")
        half, fp16_report = fp16_from_onnx(read_srx_onnx(paths["fp32"], keep_model=True))
        paths["fp16"].write_bytes(half.model.SerializeToString())
        log(f"{name}: INT8 (calibration on {SHARED / 'data' / 'train'})")
        t = time.perf_counter()
        q = quantize_file(
            paths["fp32"],
            SHARED / "data" / "train",
            paths["int8"],
            settings=QuantSettings(),
            progress=Progress.for_terminal(),
        ).to_json()
        q["seconds_wall"] = time.perf_counter() - t
        entry: dict = {
            "checkpoint": ckpt,
            "param_key": key,
            "onnx_sha256": {k: sha256(p) for k, p in paths.items()},
            "fp16_pass": fp16_report.to_dict(),
            "quantize": q,
            "eval": {},
        }
        log(f"{name}: naive INT8 baseline (every convolution, max calibration)")
        paths["int8-naive"] = work / f"{name}.int8-naive.onnx"
        paths["int8-naive"].write_bytes(naive_int8(paths["fp32"]))
        entry["onnx_sha256"]["int8-naive"] = sha256(paths["int8-naive"])
        variants = [("fp32", "all"), ("fp16", "all"), ("fp16", "disable"), ("int8", "all"), ("int8", "disable")]
        variants.append(("int8-naive", "all"))
        for prec, level in variants:
            log(f"{name}: eval {prec} ort_{level}")
            entry["eval"][f"{prec}/ort_{level}"] = evaluate(paths[prec], level, spec)
        ref = entry["eval"]["fp32/ort_all"]
        entry["drop_db"] = {
            v: {ds: ref[ds]["psnr_y"] - r[ds]["psnr_y"] for ds in DATASETS} for v, r in entry["eval"].items()
        }
        if not args.skip_1080p:
            x = big_input()
            big = {}
            ys = {}
            for prec, level in [("fp32", "all"), ("fp16", "disable"), ("int8", "disable")]:
                log(f"{name}: 1920x1080 {prec}")
                t = time.perf_counter()
                y = session(paths[prec], level).run(None, {"lr": x})[0]
                ys[prec] = y
                big[f"{prec}/ort_{level}"] = {
                    "nan": int(np.isnan(y).sum()),
                    "inf": int(np.isinf(y).sum()),
                    "max_abs": float(np.nanmax(np.abs(y))),
                    "seconds": time.perf_counter() - t,
                }
            for k in ("fp16", "int8"):
                key_ = next(v for v in big if v.startswith(k))
                big[key_]["max_abs_diff_vs_fp32"] = float(np.nanmax(np.abs(ys[k] - ys["fp32"])))
            entry["input_1920x1080"] = big
        results["models"][name] = entry
        write_json(out / "results.json", results)
    write_text(out / "results.md", table(results) + "\n")
    log("done")
    log(table(results))


def table(results: dict) -> str:
    lines = [
        "| model | precision (reading) | Set5 Y-PSNR | drop | Set14 Y-PSNR | drop |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, e in results["models"].items():
        for v, r in e["eval"].items():
            d = e["drop_db"][v]
            lines.append(
                f"| {name} | {v} | {r['Set5']['psnr_y']:.4f} | {d['Set5']:+.4f} | {r['Set14']['psnr_y']:.4f} | {d['Set14']:+.4f} |"
            )
    lines += [
        "",
        "| model | INT8 layers | kept in FP16 | held-out drop (train images) | quantize time |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, e in results["models"].items():
        q = e["quantize"]
        n = len(q["int8_layers"]) + len(q["kept_layers"])
        lines.append(
            f"| {name} | {len(q['int8_layers'])} / {n} | {', '.join(q['kept_layers']) or '-'} | "
            f"{q['psnr_drop_db']:.3f} dB on {q['held_out_images']} images | {q['seconds_wall']:.0f} s |"
        )
    big = [(n, e["input_1920x1080"]) for n, e in results["models"].items() if "input_1920x1080" in e]
    if big:
        lines += [
            "",
            "| model | 1920x1080 input | NaN | Inf | max abs diff vs FP32 |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, b in big:
            for v, r in b.items():
                diff = r.get("max_abs_diff_vs_fp32")
                lines.append(f"| {name} | {v} | {r['nan']} | {r['inf']} | {'-' if diff is None else f'{diff:.4g}'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
