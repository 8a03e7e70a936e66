"""Accuracy of the OpenVINO backends (FP32, BF16, INT8) against FP32 PyTorch, with `srx eval`.

Usage: python bench/openvino_accuracy.py OUTDIR [--models default,team15] [--target-drop DB] [--weight-bits 7]
                                        [--label NAME]

For each shipped network, through the real CLI (every step is a `srx` command, logged):
  1. `srx export` (the exact dynamic FP32 ONNX) and `srx quantize` on ../shared/data/train
     (T91 + BSD200, never Set5 / Set14) -> the INT8 Q/DQ ONNX;
  2. `srx eval` on Set5 and Set14 (x4) with --backend torch (the FP32 reference), openvino
     and openvino-bf16 (the network), onnxruntime and openvino-int8 (the Q/DQ ONNX).
Writes OUTDIR/accuracy.json (every eval's JSON), OUTDIR/accuracy.md (the drops against
torch FP32) and OUTDIR/accuracy.log (with --label NAME: accuracy_NAME.*, and the INT8 files
models/NETWORK.NAME.int8.onnx); the gate of issue 21 is a drop of at most 0.05 dB.
On a CPU without native BF16 the openvino-bf16 row is left out (srx refuses it there) and
openvino-int8 runs its floating-point rest in FP32. `--weight-bits 7` (srx quantize's, for
CPUs without VNNI) lets openvino-int8 run OpenVINO's INT8 kernels there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from portable import portable, write_json, write_text

SHARED = Path(os.environ.get("SRX_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DATASETS = ("Set5", "Set14")
GATE_DB = 0.05
ROWS = (  # (row, backend, which file)
    ("torch FP32 (reference)", "torch", "network"),
    ("openvino (FP32)", "openvino", "network"),
    ("openvino-bf16", "openvino-bf16", "network"),
    ("onnxruntime, INT8 Q/DQ", "onnxruntime", "int8"),
    ("openvino-int8 (INT8 + BF16 where the CPU has it)", "openvino-int8", "int8"),
)


def srx(log: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "srx", *args]
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True)
    with log.open("a") as f:
        f.write(portable(f"$ srx {' '.join(args)}  # {time.time() - t0:.1f} s, exit {done.returncode}\n"))
        f.write(portable(done.stderr[-2000:]))
    if done.returncode != 0:
        raise SystemExit(f"srx {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--models", default="default,team15")
    ap.add_argument("--target-drop", default=None, help="srx quantize --target-drop (default: its own)")
    ap.add_argument("--weight-bits", default="8", choices=("8", "7"), help="srx quantize --weight-bits")
    ap.add_argument("--label", default="", help="a second run's name in its files")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    stem = f"accuracy_{a.label}" if a.label else "accuracy"
    log = a.out / f"{stem}.log"
    work = a.out / "models"  # the ONNX files it makes (not committed)
    work.mkdir(exist_ok=True)
    from srx.runtime.openvino_runner import cpu_capabilities

    rows = [row for row in ROWS if row[1] != "openvino-bf16" or "BF16" in cpu_capabilities()]
    results: dict[str, dict] = {}
    for name in a.models.split(","):
        fp32, int8 = work / f"{name}.onnx", work / f"{name}{'.' + a.label if a.label else ''}.int8.onnx"
        if not fp32.exists():
            srx(log, "export", "--weights", name, "-o", str(fp32))
        if not int8.exists():
            quant = ["quantize", str(fp32), "--calib-dir", str(SHARED / "data/train"), "-o", str(int8), "--quiet",
                     "--weight-bits", a.weight_bits]  # fmt: skip
            srx(log, *quant, *(["--target-drop", a.target_drop] if a.target_drop else []))
        for dataset in DATASETS:
            for row, backend, which in rows:
                model = name if which == "network" else str(int8)
                out = srx(log, "eval", "--dataset", str(SHARED / "data/benchmarks" / dataset), "--model", model,
                          "--backend", backend, "--quiet", "--json", "-")  # fmt: skip
                results.setdefault(name, {}).setdefault(dataset, {})[row] = json.loads(out)
    write_json(a.out / f"{stem}.json", results)
    lines = [
        "| network | row | Set5 PSNR / SSIM | drop | Set14 PSNR / SSIM | drop |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, per in results.items():
        for row, _backend, _which in rows:
            cells = []
            for dataset in DATASETS:
                r, ref = per[dataset][row], per[dataset][ROWS[0][0]]
                drop = ref["psnr_y"] - r["psnr_y"]
                flag = "" if drop <= GATE_DB else " (over the gate)"
                cells += [
                    f"{r['psnr_y']:.4f} / {r['ssim_y']:.4f}",
                    f"{drop:.4f} dB{flag}" if row != ROWS[0][0] else "-",
                ]
            lines.append(f"| {name} | {row} | {' | '.join(cells)} |")
    write_text(a.out / f"{stem}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
