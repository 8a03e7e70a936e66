"""`srx eval --model X.onnx`: exported models scored through the srx/runtime runners."""

from __future__ import annotations

import json

import pytest
from conftest import DATA, assert_one_line_error, run_srx, weight_path
from test_eval import saved_checkpoint, write_dataset

from srx.evaluate import evaluate
from srx.export.model import export_onnx
from srx.models import load_model, seeded_model
from srx.sizes import Size

pytest.importorskip("onnxruntime")

SET5 = DATA / "benchmarks" / "Set5"


def _export(model, path):
    # The library call behind `srx export` (simplified, verified against PyTorch, written atomically).
    export_onnx(model, path, input_size=Size(32, 24))
    return path


def test_onnx_scores_equal_the_checkpoint(tmp_path):
    data = write_dataset(tmp_path / "d", sizes=((37, 53), (48, 41), (30, 30)))
    ckpt, _ = saved_checkpoint(tmp_path)
    onnx_path = _export(load_model(ckpt), tmp_path / "m.onnx")
    proc = run_srx("eval", "--dataset", str(data), "--model", str(onnx_path), "--json", "-")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    ref = evaluate(data, str(ckpt))
    assert d["model"] == str(onnx_path) and d["scale"] == 2 and d["backend"] == "onnxruntime"
    assert d["model_spec"]["arch"] == "safmn" and len(d["images"]) == 3
    for got, want in zip(d["images"], ref.images, strict=True):
        assert got["name"] == want.name
        assert got["psnr_y"] == pytest.approx(want.psnr_y, abs=1e-3)
        assert got["ssim_y"] == pytest.approx(want.ssim_y, abs=1e-5)


def test_onnx_refusals_are_one_line(tmp_path):
    data = write_dataset(tmp_path / "d")
    ckpt, _ = saved_checkpoint(tmp_path)
    onnx_path = _export(load_model(ckpt), tmp_path / "m.onnx")
    untrained = _export(seeded_model(2), tmp_path / "seeded.onnx")

    def fails(*args):
        return assert_one_line_error(run_srx("eval", "--dataset", str(data), *args))

    assert "contradicts" in fails("--model", str(onnx_path), "--scale", "4")
    assert "--param-key applies to checkpoints" in fails("--model", str(onnx_path), "--param-key", "params_ema")
    assert "untrained" in fails("--model", str(untrained))
    (tmp_path / "m.engine").write_bytes(b"not an engine")
    assert "sidecar" in fails("--model", str(tmp_path / "m.engine"))


@pytest.mark.shared
def test_team15_onnx_in_onnxruntime_scores_like_pytorch_on_set5_x4(tmp_path):
    """The acceptance check: exported + onnxruntime == PyTorch on Set5 x4 Y-PSNR, within 0.001 dB."""
    ckpt = weight_path("team15_SAFMN.pth")
    onnx_path = _export(load_model(ckpt), tmp_path / "team15.onnx")
    proc = run_srx("eval", "--dataset", str(SET5), "--model", str(onnx_path), "--json", "-")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    ref = evaluate(SET5, str(ckpt))
    assert d["scale"] == 4 and d["model_spec"]["arch"] == "safmn-ntire23" and len(d["images"]) == 5
    assert abs(d["psnr_y"] - ref.psnr_y) <= 0.001, (d["psnr_y"], ref.psnr_y)
    for got, want in zip(d["images"], ref.images, strict=True):
        assert abs(got["psnr_y"] - want.psnr_y) <= 0.001, (got, want)


def test_engine_runs_through_the_tensorrt_runner(tmp_path, monkeypatch):
    """`srx eval --model X.engine`: the engine seam end to end, on stand-in TensorRT and CUDA
    (tests/trt_fakes.py: the fake engine upscales by nearest x4)."""
    import dataclasses

    import numpy as np
    from onnx_models import write_onnx
    from trt_fakes import FakeCudart, make_trt

    import srx.runtime.cudart as cudart
    import srx.runtime.trt_session as ts
    from srx.engines.build import engine_from_onnx
    from srx.evaluate import ResolvedModel, evaluate_model
    from srx.runtime.base import Availability
    from srx.runtime.cudart import DeviceInfo
    from srx.runtime.registry import BACKENDS
    from srx.runtime.sidecar import sidecar_path

    trt = make_trt("10.3.0.30")
    engine = tmp_path / "m.engine"
    engine_from_onnx(write_onnx(tmp_path, "safmn-ntire23"), engine, precision="fp16", backend="tensorrt",
                     trt_module=trt, device=DeviceInfo("NVIDIA Fake GPU", "8.9", 24000, 128),
                     min_size="16x16", max_size="64x64", batch="1:1:1")  # fmt: skip
    side = json.loads(sidecar_path(engine).read_text())
    side["spec"]["trained"] = True  # a random-weight model stands in for a trained one
    sidecar_path(engine).write_text(json.dumps(side))
    monkeypatch.setattr(ts, "import_backend", lambda backend: trt)
    monkeypatch.setattr(cudart, "import_cudart", lambda: FakeCudart())
    yes = dataclasses.replace(BACKENDS["tensorrt"], check=lambda device, source: Availability.yes())
    monkeypatch.setitem(BACKENDS, "tensorrt", yes)

    data = write_dataset(tmp_path / "d", sizes=((100, 124), (88, 64)))
    got = evaluate(data, str(engine))

    def nearest(lr):
        return lr.repeat(4, axis=0).repeat(4, axis=1)

    want = evaluate_model(data, ResolvedModel("nearest", 4, nearest))
    assert got.extra["backend"] == "tensorrt" and got.scale == 4
    assert [s.psnr_y for s in got.images] == [s.psnr_y for s in want.images]
    assert np.isfinite(got.psnr_y)
