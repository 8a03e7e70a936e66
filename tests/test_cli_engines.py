"""`srx quantize`, `srx build-engine`, `srx info ENGINE` through the real CLI: results and bad input."""

from __future__ import annotations

import json
import os

import onnx
import pytest
from conftest import assert_one_line_error, run_srx
from onnx import TensorProto, helper
from onnx_models import write_images, write_onnx

pytest.importorskip("onnxruntime")
needs_rtx = pytest.mark.skipif(
    __import__("importlib").util.find_spec("tensorrt_rtx") is None, reason="needs tensorrt-rtx-cu13"
)


@pytest.fixture
def model(tmp_path):
    return write_onnx(tmp_path, "safmn-ntire23")


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@needs_rtx
def test_build_engine_fp16_and_info(tmp_path, model):
    proc = run_srx("build-engine", str(model), "--fp16", "--backend", "tensorrt-rtx", "--max", "640x360",
                   "-o", str(tmp_path / "sr.engine"), "--json", "-")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    for key in ("engine", "backend", "backend_version", "precision", "profile", "precision_onnx", "build_seconds",
                "engine_bytes"):  # fmt: skip
        assert key in r, key
    assert r["precision"] == "fp16" and r["backend"] == "tensorrt-rtx"
    assert r["profile"] == {"min": "64x64", "opt": "640x360", "max": "640x360", "batch": [1, 1, 1]}
    assert r["precision_onnx"].endswith("sr.fp16.onnx") and os.path.getsize(r["engine"]) == r["engine_bytes"]
    info = run_srx("info", str(tmp_path / "sr.engine"), "--json", "-")
    assert info.returncode == 0, info.stderr
    d = json.loads(info.stdout)
    assert d["sidecar"]["precision"] == "fp16" and d["spec"]["arch"] == "safmn-ntire23"
    text = run_srx("info", str(tmp_path / "sr.engine")).stdout
    assert "precision  fp16" in text and "tensorrt-rtx" in text
    text = run_srx("info", r["precision_onnx"]).stdout
    assert "precision  fp16" in text and "islands: norm" in text


def test_quantize_cli(tmp_path, model):
    calib = write_images(tmp_path / "calib", 6, (96, 80))
    proc = run_srx("quantize", str(model), "--calib-dir", str(calib), "--calib-images", "4", "--held-out", "1",
                   "--crop", "32", "--sensitivity-crops", "2", "--json", str(tmp_path / "q.json"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "q.json").read_text())
    assert r["onnx"] == str(tmp_path / "safmn-ntire23.int8.onnx") and r["calibration_images"] == 4
    assert isinstance(r["psnr_vs_fp32"], float) and r["held_out_images"] == 1
    m = onnx.load(r["onnx"])
    assert {p.key: p.value for p in m.metadata_props}["srx.precision"] == "int8"
    assert "held-out" in proc.stdout
    text = run_srx("info", r["onnx"]).stdout
    assert "precision  int8" in text and "convolutions INT8 (Q/DQ)" in text


def test_quantize_gate_passes_within_the_limit(tmp_path, model):
    # The failing side of the gate (exit 1, nothing written) is tested on the library with a fixed report.
    calib = write_images(tmp_path / "calib", 4, (64, 64))
    proc = run_srx("quantize", str(model), "--calib-dir", str(calib), "--calib-images", "2", "--held-out", "1",
                   "--crop", "24", "--sensitivity-crops", "1", "--max-psnr-drop", "50", "--weight-bits", "7",
                   "--json", "-")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["max_psnr_drop"] == 50.0 and r["weight_bits"] == 7 and "7-bit weights" in proc.stderr
    assert (tmp_path / "safmn-ntire23.int8.onnx").is_file()
    assert "convolutions INT8 (Q/DQ, 7-bit weights)" in run_srx("info", r["onnx"]).stdout
    line = assert_one_line_error(run_srx("quantize", str(model), "--calib-dir", str(calib), "--max-psnr-drop", "-1"), 2)
    assert "must be >= 0" in line


def _not_an_image_model(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--int8"], "--int8 needs calibration images"),
        (["--int8", "--calib-dir", "{empty}"], "holds no images"),
        (["--int8", "--calib-dir", "{texts}"], "holds no images"),
        (["--int8", "--calib-dir", "{broken}"], "not an image srx can read"),
        (["--fp16", "--min", "256x256", "--max", "128x128"], "larger than --max"),
        (["--fp16", "--min", "12x12"], "below this model's minimum input 16x16"),
        (["--fp16", "-o", "{missing}/x.engine"], "does not exist"),
        (["--fp16", "-o", "{afile}/x.engine"], "cannot write"),
        (["--fp16", "--fp32"], "give one precision"),
        (["--fp16", "--dla-core", "0"], "--dla-core N needs --target jetson"),
        (["--fp16", "--batch", "0"], "--batch"),
    ],
)
def test_build_engine_bad_input(tmp_path, model, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "readme.txt").write_text("no images here")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.png").write_bytes(b"not a png")
    (tmp_path / "broken" / "b.png").write_bytes(b"not a png either")
    (tmp_path / "afile").write_text("x")
    fill = {"empty": tmp_path / "empty", "texts": tmp_path / "texts", "broken": tmp_path / "broken",
            "missing": tmp_path / "missing", "afile": tmp_path / "afile"}  # fmt: skip
    before = listing(tmp_path)
    argv = [a.format(**fill) for a in args]
    proc = run_srx("build-engine", str(model), "--backend", "tensorrt-rtx", *argv)
    line = assert_one_line_error(proc, 2)
    assert message in line, line
    assert listing(tmp_path) == before, "a failed build must not leave files behind"


def test_not_an_image_model_and_unwritable_output(tmp_path):
    bad = _not_an_image_model(tmp_path / "relu.onnx")
    for cmd in (["build-engine", str(bad), "--fp16"], ["quantize", str(bad), "--calib-dir", str(tmp_path)]):
        line = assert_one_line_error(run_srx(*cmd), 2)
        assert "not an srx image model" in line
    model = write_onnx(tmp_path, "safmnpp")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        line = assert_one_line_error(run_srx("build-engine", str(model), "--fp16", "-o", str(locked / "x.engine")), 2)
        assert "no permission" in line
        calib = write_images(tmp_path / "calib", 2, (64, 64))
        line = assert_one_line_error(
            run_srx("quantize", str(model), "--calib-dir", str(calib), "-o", str(locked / "x.onnx")), 2
        )
        assert "no permission" in line
    finally:
        locked.chmod(0o700)
    assert listing(locked) == []


def test_quantize_bad_calibration_folders(tmp_path, model):
    (tmp_path / "one").mkdir()
    write_images(tmp_path / "one", 1, (64, 64))
    line = assert_one_line_error(run_srx("quantize", str(model), "--calib-dir", str(tmp_path / "one")), 2)
    assert "at least 2" in line
    line = assert_one_line_error(run_srx("quantize", str(model), "--calib-dir", str(tmp_path / "nope")), 2)
    assert "does not exist" in line
    assert_one_line_error(run_srx("quantize", str(model)), 2)  # --calib-dir is required


# -- issue 16 point 5: an `srx quantize` ONNX is built from (with its accuracy) or kept ---------

# Small enough that quantize and the TensorRT-RTX builds take seconds on a 2-core CPU.
QUICK_QUANTIZE = ("--calib-images", "2", "--held-out", "1", "--crop", "24", "--sensitivity-crops", "1")
QUICK_PROFILE = ("--backend", "tensorrt-rtx", "--min", "64x64", "--opt", "64x64", "--max", "96x96")


def _quantized(tmp_path, model):
    calib = write_images(tmp_path / "calib", 4, (64, 64))
    proc = run_srx("quantize", str(model), "--calib-dir", str(calib), *QUICK_QUANTIZE, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    q = json.loads(proc.stdout)
    assert q["onnx"] == str(tmp_path / "safmn-ntire23.int8.onnx")
    return tmp_path / "safmn-ntire23.int8.onnx", q, calib


@needs_rtx
def test_build_engine_from_a_quantized_onnx_reports_quantizes_accuracy(tmp_path, model):
    qdq, q, _ = _quantized(tmp_path, model)
    made = qdq.read_bytes()
    proc = run_srx("build-engine", str(qdq), *QUICK_PROFILE, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["precision"] == "int8" and r["engine"] == str(tmp_path / "safmn-ntire23.int8.engine")
    assert r["precision_onnx"] is None, "built from the given Q/DQ ONNX: no new precision ONNX"
    assert r["quantize"] == {k: q[k] for k in ("psnr_drop_db", "psnr_vs_fp32", "held_out_images")}
    # The human report (on stderr with --json -) carries the drop quantize measured on its held-back image.
    line = f"accuracy    INT8 Y-PSNR drop {q['psnr_drop_db']:.3f} dB on 1 held-back image (INT8 vs FP32"
    assert line in proc.stderr, proc.stderr
    assert qdq.read_bytes() == made, "the quantized ONNX is read, not rewritten"


@needs_rtx
def test_build_engine_int8_keeps_a_quantized_onnx_unless_overwrite(tmp_path, model):
    qdq, _, calib = _quantized(tmp_path, model)
    made = qdq.read_bytes()
    args = ["build-engine", str(model), "--int8", "--calib-dir", str(calib), *QUICK_PROFILE]
    before = listing(tmp_path)
    line = assert_one_line_error(run_srx(*args), 2)
    assert f"{qdq} already exists (from 'srx quantize' or an earlier build)" in line, line
    assert f"'srx build-engine {qdq}'" in line and "--overwrite" in line
    assert qdq.read_bytes() == made and listing(tmp_path) == before, "refused before any work or file"

    proc = run_srx(*args, "--overwrite", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["precision_onnx"] == str(qdq) and qdq.read_bytes() != made, "recalibrated and replaced"
    meta = {p.key: p.value for p in onnx.load(str(qdq)).metadata_props}
    assert meta["srx.precision"] == "int8"
    assert r["quantize"]["psnr_drop_db"] == json.loads(meta["srx.int8"])["psnr_drop_db"]
    assert "accuracy    INT8 Y-PSNR drop" in proc.stderr, proc.stderr


@needs_rtx
def test_a_second_fp16_build_keeps_the_fp16_onnx_unless_overwrite(tmp_path, model):
    first = run_srx("build-engine", str(model), "--fp16", *QUICK_PROFILE, "--json", "-")
    assert first.returncode == 0, first.stderr
    half = tmp_path / "safmn-ntire23.fp16.onnx"
    assert json.loads(first.stdout)["precision_onnx"] == str(half)
    made, before = half.read_bytes(), listing(tmp_path)

    line = assert_one_line_error(run_srx("build-engine", str(model), "--fp16", *QUICK_PROFILE), 2)
    assert f"{half} already exists (from an earlier build)" in line and "quantize" not in line, line
    assert f"'srx build-engine {half}'" in line and "--overwrite" in line
    assert half.read_bytes() == made and listing(tmp_path) == before

    reuse = run_srx("build-engine", str(half), *QUICK_PROFILE, "--json", "-")  # what the refusal suggests
    assert reuse.returncode == 0, reuse.stderr
    r = json.loads(reuse.stdout)
    assert r["precision"] == "fp16" and r["precision_onnx"] is None and half.read_bytes() == made
    assert r["engine"] == str(tmp_path / "safmn-ntire23.fp16.engine")

    again = run_srx("build-engine", str(model), "--fp16", *QUICK_PROFILE, "--overwrite", "--json", "-")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["precision_onnx"] == str(half) and listing(tmp_path) == before


@needs_rtx
def test_build_engine_warns_when_calibrating_on_an_evaluation_set(tmp_path, model):
    """`--calib-dir` on Set5 is accepted (the help says never Set5/Set14), with a warning first (issue 16 point 8)."""
    for folder, warned in (("benchmarks/Set5", True), ("train", False)):
        calib = write_images(tmp_path / folder, 3, (64, 64))
        out = tmp_path / f"{calib.name}.engine"
        proc = run_srx("build-engine", str(model), "--int8", "--calib-dir", str(calib), *QUICK_PROFILE, "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        assert out.is_file() and "wrote" in proc.stdout
        if warned:
            assert proc.stderr.startswith(f"srx: warning: --calib-dir {calib} looks like the Set5 evaluation set")
            assert "calibrate on training images" in proc.stderr
        else:
            assert proc.stderr == "", proc.stderr
