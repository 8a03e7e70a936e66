"""One reader for srx ONNX files (issue 18): every command gives the same answer about a file.

srx once had two readers (`srx info`, bench, upscale and eval used one; quantize and
build-engine another) and they disagreed on four kinds of file: a precision srx does not
write (bf16), no precision key, a node input that points at nothing, and an int64 `lr`
input. Here each of those goes through the real entry point of info, bench, eval,
quantize and build-engine: the refused ones with the same one line from every command,
the accepted ones (no precision key, FP32 or INT8 graph) read as the same precision by all.
"""

from __future__ import annotations

import json

import onnx
import pytest
from conftest import assert_one_line_error
from onnx_models import onnx_bytes, write_images
from robust import run_inprocess

pytest.importorskip("onnxruntime")


def _base() -> onnx.ModelProto:
    """A tiny x4 srx model whose spec says trained, so `srx eval` does not refuse it for that."""
    m = onnx.load_from_string(onnx_bytes("safmn"))
    for p in m.metadata_props:
        if p.key == "srx.spec":
            spec = json.loads(p.value)
            spec["trained"] = True
            p.value = json.dumps(spec)
    return m


def _drop_precision_key(m: onnx.ModelProto) -> onnx.ModelProto:
    kept = [p for p in m.metadata_props if p.key != "srx.precision"]
    del m.metadata_props[:]
    m.metadata_props.extend(kept)
    return m


def _set_precision(m: onnx.ModelProto, value: str) -> onnx.ModelProto:
    next(p for p in m.metadata_props if p.key == "srx.precision").value = value
    return m


def _dangling_input(m: onnx.ModelProto) -> onnx.ModelProto:
    node = next(n for n in m.graph.node if n.op_type == "Conv")
    node.input[0] = "points_at_nothing"
    return m


def _int64_input(m: onnx.ModelProto) -> onnx.ModelProto:
    m.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.INT64
    return m


def _int8_graph() -> onnx.ModelProto:
    from srx.export.metadata import srx_onnx_from_model
    from srx.precision import int8 as Q

    base = srx_onnx_from_model(_base()).graph()
    sites = Q.conv_sites(base)
    return Q.qdq_model(base, sites, {s.act: 1.0 for s in sites}, {s.layer for s in sites}, fp16_scales=False)


REFUSED = {
    "precision-bf16": (lambda: _set_precision(_base(), "bf16"), "unknown srx.precision 'bf16'"),
    "dangling-node-input": (lambda: _dangling_input(_base()), "damaged ONNX model"),
    "int64-lr": (lambda: _int64_input(_base()), "input 'lr' is a 4-D int64 tensor"),
}
ACCEPTED = {
    "fp32-without-precision-key": (lambda: _drop_precision_key(_base()), "fp32"),
    "int8-without-precision-key": (lambda: _drop_precision_key(_int8_graph()), "int8"),
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("one-reader")
    return {"data": write_images(root / "data", 3, (96, 80)), "root": root}


def _commands(path, folders, out):
    return {
        "info": ["info", str(path), "--json", "-"],
        "bench": [
            "bench",
            "--model",
            str(path),
            "--backends",
            "onnxruntime",
            "--input",
            "16x16",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--json",
            "-",
        ],
        "eval": ["eval", "--dataset", str(folders["data"]), "--model", str(path), "--json", "-"],
        "quantize": [
            "quantize",
            str(path),
            "--calib-dir",
            str(folders["data"]),
            "--calib-images",
            "2",
            "--held-out",
            "1",
            "--crop",
            "24",
            "--sensitivity-crops",
            "1",
            "-o",
            str(out / "q.onnx"),
        ],
        "build-engine": ["build-engine", str(path), "--backend", "tensorrt-rtx", "-o", str(out / "e.engine")],
    }


@pytest.mark.parametrize("case", list(REFUSED))
def test_every_command_refuses_the_same_file_with_the_same_line(tmp_path, folders, case):
    make, expect = REFUSED[case]
    path = tmp_path / f"{case}.onnx"
    path.write_bytes(make().SerializeToString())
    out = tmp_path / "out"
    out.mkdir()
    lines = {}
    for command, args in _commands(path, folders, out).items():
        lines[command] = assert_one_line_error(run_inprocess(*args), 2)
    assert len(set(lines.values())) == 1, lines
    assert expect in lines["info"], lines["info"]
    assert not any(out.iterdir())


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_every_command_reads_the_same_precision(tmp_path, folders, case):
    make, precision = ACCEPTED[case]
    path = tmp_path / f"{case}.onnx"
    path.write_bytes(make().SerializeToString())
    out = tmp_path / "out"
    out.mkdir()
    cmd = _commands(path, folders, out)

    info = run_inprocess(*cmd["info"])
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["onnx"]["precision"] == precision

    bench = run_inprocess(*cmd["bench"])
    assert bench.returncode == 0, bench.stderr
    row = next(r for r in json.loads(bench.stdout)["results"] if r["backend"] == "onnxruntime")
    assert row["status"] == "ok" and row["precision"] == precision

    ev = run_inprocess(*cmd["eval"])
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["precision"] == precision

    # quantize and build-engine show which precision they read by what they accept.
    # Both refuse before TensorRT is imported, so this needs no TensorRT.
    quantize = run_inprocess(*cmd["quantize"])
    if precision == "fp32":
        assert quantize.returncode == 0, quantize.stderr
        int8 = run_inprocess(*cmd["build-engine"], "--int8")
        assert "--int8 needs calibration images" in assert_one_line_error(int8, 2)
    else:
        assert "the model is already INT8" in assert_one_line_error(quantize, 2)
        fp16 = run_inprocess(*cmd["build-engine"], "--fp16")
        assert "the ONNX is already INT8" in assert_one_line_error(fp16, 2)
