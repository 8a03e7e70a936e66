"""Real TensorRT-RTX engines built ahead of time on this CPU: FP32, FP16 and INT8.

TensorRT-RTX parses with the same ONNX parser family as TensorRT and builds strongly
typed networks, so these builds prove that srx's FP32, FP16 (FP32 islands, explicit
Casts) and INT8 (Q/DQ over FP16) graphs are accepted by a real TensorRT builder.
Running the engines needs an RTX GPU (not here).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto
from onnx_models import write_images

from srx.engines.build import engine_from_onnx
from srx.precision.graph import in_norm_module, tensor_types
from srx.precision.int8 import QuantSettings
from srx.runtime.sidecar import read_sidecar

pytest.importorskip("tensorrt_rtx")
pytest.importorskip("onnxruntime")

# Tiny calibration (the full defaults take minutes; bench/precision_accuracy.py runs them). A loose
# target keeps the selection loop short: the builds, not the accuracy, are under test here.
FAST_Q = QuantSettings(calibration_images=4, held_out_images=2, crop=32, sensitivity_crops=2, sensitivity_crop=24,
                       held_out_max_side=32, target_drop_db=0.5)  # fmt: skip


@cache
def _export(which: str) -> bytes:
    from conftest import weight_path

    from srx.export.model import onnx_from_model, simplify_onnx
    from srx.models import load_model, seeded_model

    model = seeded_model(4) if which == "paper" else load_model(weight_path("team15_SAFMN.pth"))
    return simplify_onnx(onnx_from_model(model)).SerializeToString()


def _build_all(tmp_path: Path, which: str, calib: Path) -> dict[str, dict]:
    src = tmp_path / f"{which}.onnx"
    src.write_bytes(_export(which))
    out = {}
    for prec in ("fp32", "fp16", "int8"):
        out[prec] = engine_from_onnx(
            src,
            tmp_path / f"{which}.{prec}.engine",
            precision=prec,
            calib_dir=calib if prec == "int8" else None,
            backend="tensorrt-rtx",
            quant=FAST_Q,
        ).to_json()
    return out


def _check(tmp_path: Path, which: str, results: dict[str, dict]) -> None:
    for prec, r in results.items():
        engine = Path(r["engine"])
        side = read_sidecar(engine)
        assert engine.stat().st_size == r["engine_bytes"] > 100_000
        assert side["precision"] == prec and side["backend"] == "tensorrt-rtx" and side["network"] == "strongly typed"
        assert side["device"]["built_on"] == "cpu (ahead of time)"
        assert (r["precision_onnx"] is None) == (prec == "fp32")
    half = onnx.load(str(tmp_path / f"{which}.fp16.onnx"))
    types = tensor_types(half)
    norm = [n for n in half.graph.node if in_norm_module(n.name) and n.op_type != "Cast"]
    assert norm and all(types[o] == TensorProto.FLOAT for n in norm for o in n.output if o in types)
    q = onnx.load(str(tmp_path / f"{which}.int8.onnx"))
    assert sum(n.op_type == "QuantizeLinear" for n in q.graph.node) > 10


@pytest.mark.slow
def test_paper_x4_random_weights(tmp_path):
    calib = write_images(tmp_path / "calib", 8, (160, 120))
    results = _build_all(tmp_path, "paper", calib)
    _check(tmp_path, "paper", results)
    assert json.loads((tmp_path / "paper.fp16.engine.json").read_text())["spec"]["trained"] is False


@pytest.mark.shared
@pytest.mark.slow
def test_team15(tmp_path):
    from conftest import DATA

    results = _build_all(tmp_path, "team15", DATA / "train" / "T91")
    _check(tmp_path, "team15", results)
    rep = results["int8"]["quantize"]
    # Tiny calibration settings here; the accuracy figures come from bench/precision_accuracy.py.
    assert rep["held_out_images"] == 2 and rep["psnr_vs_fp32"] > 30
