"""INT8 for OpenVINO two ways: srx's Q/DQ ONNX (`srx quantize`) against NNCF's post-training quantization.

Usage: pip install nncf; python bench/openvino_nncf.py OUTDIR --fp32 MODEL.onnx --int8 MODEL.int8.onnx [--rounds 6]

NNCF quantizes the same FP32 ONNX on the same calibration crops `srx quantize` uses (the
seeded split of ../shared/data/train: 64 images, one 96-pixel LR crop each, never Set5 /
Set14), with its defaults (preset PERFORMANCE, fast bias correction). Both INT8 models run
in OpenVINO with the floating-point rest in BF16 where the CPU has it (as the openvino-int8
backend does) and in FP32; each is scored with `srx eval`'s protocol on Set5 and Set14 and
timed at 320x180, interleaved over --rounds rounds. Writes OUTDIR/nncf.json and nncf.md.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

import numpy as np
from portable import write_json, write_text

SHARED = Path(os.environ.get("SRX_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def nncf_model(fp32: Path, out: Path) -> tuple[Path, float]:
    import nncf
    import openvino as ov

    from srx.precision.calib import list_images, random_crop_pair, split_images
    from srx.precision.int8 import QuantSettings

    st = QuantSettings()
    files = list_images(SHARED / "data/train")
    split = split_images(files, held_out=st.held_out_images, calibration=st.calibration_images, seed=st.seed)
    rng = random.Random(st.seed)
    crops = [p for f in split.calibration if (p := random_crop_pair(f, scale=4, lr_size=st.crop, min_lr=8, rng=rng))]
    t0 = time.time()
    model = nncf.quantize(
        ov.Core().read_model(str(fp32)),
        nncf.Dataset([c.lr[None] for c in crops]),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        subset_size=len(crops),
        fast_bias_correction=True,
    )
    seconds = time.time() - t0
    path = out / "models" / "default.nncf.xml"
    ov.save_model(model, str(path))
    return path, seconds


class Compiled:
    """An OpenVINO model (IR or ONNX) compiled per input shape, as the openvino runners do."""

    def __init__(self, model: object, precision: str) -> None:
        import openvino as ov

        self.core, self.model, self.precision, self.cache = ov.Core(), model, precision, {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape not in self.cache:
            m = self.model.clone()
            m.reshape({m.inputs[0].any_name: list(x.shape)})
            cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": self.precision}
            self.cache = {x.shape: self.core.compile_model(m, "CPU", cfg).create_infer_request()}
        return np.array(self.cache[x.shape].infer({0: x})[0], dtype=np.float32)


def main() -> None:
    import io

    import onnx
    import openvino as ov

    from srx.evaluate import ResolvedModel, evaluate_model, upscaler_from_runner
    from srx.runtime.openvino_graph import for_openvino

    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--fp32", type=Path, required=True)
    ap.add_argument("--int8", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=6)
    a = ap.parse_args()
    nncf_path, nncf_seconds = nncf_model(a.fp32, a.out)
    core = ov.Core()
    qdq, _ = for_openvino(onnx.load(str(a.int8)))
    models = {"srx Q/DQ": core.read_model(io.BytesIO(qdq.SerializeToString())), "NNCF": core.read_model(nncf_path)}
    rows: dict[str, dict] = {}
    x = np.random.default_rng(0).random((1, 3, 180, 320), dtype=np.float32)
    for name, model in models.items():
        for precision in ("bf16", "f32"):
            run = Compiled(model, precision)
            row = rows[f"{name}, rest {precision}"] = {}
            for ds in ("Set5", "Set14"):
                res = evaluate_model(SHARED / "data/benchmarks" / ds, ResolvedModel(name, 4, upscaler_from_runner(run)))
                row[ds] = res.psnr_y
            run(x)
            row["run"] = run
    for _ in range(a.rounds):
        for row in rows.values():
            t0 = time.perf_counter()
            row["run"](x)
            row.setdefault("ms", []).append((time.perf_counter() - t0) * 1000)
    lines = ["| INT8 model | Set5 | Set14 | median ms at 320x180 |", "| --- | --- | --- | --- |"]
    for name, row in rows.items():
        row.pop("run")
        row["median_ms"] = float(np.median(row["ms"]))
        lines.append(f"| {name} | {row['Set5']:.4f} | {row['Set14']:.4f} | {row['median_ms']:.1f} |")
    write_json(
        a.out / "nncf.json", {"nncf_quantize_seconds": nncf_seconds, "load_after": os.getloadavg(), "rows": rows}
    )
    write_text(a.out / "nncf.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
