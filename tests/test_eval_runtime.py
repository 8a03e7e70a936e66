"""`srx eval --model X.onnx`: exported models scored through the srx/runtime runners."""

from __future__ import annotations

import json

import pytest
from conftest import DATA, assert_one_line_error, run_srx, weight_path
from test_eval import saved_checkpoint, write_dataset

from srx.evaluate import evaluate
from srx.export.model import export_onnx
from srx.models import default_model, load_model
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
    untrained = _export(default_model(2), tmp_path / "default.onnx")

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
