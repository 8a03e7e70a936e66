"""INT8 Q/DQ pass: TensorRT's placement and symmetry, range choice, calibration and selection."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from onnx_models import natural_batch, onnx_bytes, ort_run, write_images

from srx.errors import BadInput, CheckFailed
from srx.export.metadata import srx_onnx_from_model
from srx.precision import int8 as Q
from srx.precision.graph import tensor_types

pytest.importorskip("onnxruntime")

SMALL = Q.QuantSettings(
    calibration_images=6, held_out_images=2, crop=32, sensitivity_crops=3, sensitivity_crop=24, held_out_max_side=40
)


def _src(arch: str = "safmn"):
    return srx_onnx_from_model(onnx.load_from_string(onnx_bytes(arch)))


def test_qdq_placement_is_what_tensorrt_fuses():
    src = _src()
    sites = Q.conv_sites(src.model)
    ranges = {s.act: 2.0 for s in sites}
    m = Q.qdq_model(src.model, sites, ranges, {s.layer for s in sites}, fp16_scales=False)
    g = m.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    convs = [n for n in g.node if n.op_type == "Conv"]
    assert len(convs) == len(sites) > 0
    for conv in convs:
        dq_x, dq_w = producer[conv.input[0]], producer[conv.input[1]]
        assert dq_x.op_type == dq_w.op_type == "DequantizeLinear"
        assert producer[dq_x.input[0]].op_type == "QuantizeLinear"
        w = inits[dq_w.input[0]]
        assert w.dtype == np.int8 and np.abs(w.astype(int)).max() <= 127  # symmetric: -127..127
        assert next(a.i for a in dq_w.attribute if a.name == "axis") == 0  # per output channel
        assert inits[dq_w.input[1]].shape == (w.shape[0],) and (inits[dq_w.input[1]] > 0).all()
    for node in g.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = inits[node.input[2]]
            assert zp.dtype == np.int8 and not zp.any(), f"{node.name}: zero points must be 0 (TensorRT)"
    # Only convolution inputs are quantized: every DequantizeLinear feeds a Conv.
    users = {i: n for n in g.node for i in n.input}
    assert all(users[n.output[0]].op_type == "Conv" for n in g.node if n.op_type == "DequantizeLinear")


def test_weights_round_trip_within_half_a_step():
    src = _src("safmnpp")
    sites = Q.conv_sites(src.model)
    m = Q.qdq_model(src.model, sites, {s.act: 1.0 for s in sites}, {s.layer for s in sites}, fp16_scales=True)
    before = {i.name: numpy_helper.to_array(i) for i in src.model.graph.initializer}
    after = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    for s in sites:
        w, q, scale = before[s.weight], after[f"{s.weight}.int8"], after[f"{s.weight}.qdq.scale"]
        assert np.all(scale.astype(np.float16).astype(np.float32) == scale), "FP16 scales must be exact in FP16"
        err = np.abs(q.astype(np.float32) * scale[:, None, None, None] - w)
        assert (err <= scale[:, None, None, None] / 2 + 1e-7).all()


def test_7_bit_weights_stay_within_63_and_round_trip_within_half_their_step():
    # For OpenVINO on CPUs without VNNI (srx.precision.int8: 2 x 255 x 63 fits in 16 bits).
    src = _src()
    sites = Q.conv_sites(src.model)
    act = {s.act: 1.0 for s in sites}
    m = Q.qdq_model(src.model, sites, act, {s.layer for s in sites}, fp16_scales=False, weight_max=63)
    before = {i.name: numpy_helper.to_array(i) for i in src.model.graph.initializer}
    after = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    for s in sites:
        w, q, scale = before[s.weight], after[f"{s.weight}.int8"], after[f"{s.weight}.qdq.scale"]
        assert np.abs(q.astype(int)).max() == 63  # each channel's largest weight at the top level
        err = np.abs(q.astype(np.float32) * scale[:, None, None, None] - w)
        assert (err <= scale[:, None, None, None] / 2 + 1e-7).all()
    assert Q.QuantSettings(weight_bits=7).weight_max == 63 and Q.QuantSettings().weight_max == 127


def test_choose_range():
    rng = np.random.default_rng(0)
    x = rng.laplace(size=100_000).astype(np.float32)  # heavy tails, like activations after GELU / residuals
    amax = float(np.abs(x).max())
    assert Q.choose_range(x, amax, "max") == amax
    a = Q.choose_range(x, amax, "mse")
    assert 2.0 < a < 0.9 * amax, a  # clips the rare tail instead of wasting levels on it

    def mse(a: float) -> float:
        s = a / 127
        return float(np.mean((x - np.clip(np.round(x / s), -128, 127) * s) ** 2))

    assert mse(a) <= min(mse(amax), mse(amax / 2), mse(a * 0.7))
    assert Q.choose_range(np.zeros(10, np.float32), 0.0, "mse") == 1.0
    assert 0 < Q.choose_range(x, amax, "percentile") < amax


def test_fp16_ceil_never_rounds_down():
    x = np.array([1e-3, 0.3, 1 / 127, 3e-6, 70000.0 / 65536], dtype=np.float32)
    up = Q._fp16_ceil(x)
    assert (up >= x).all() and (up.astype(np.float16).astype(np.float32) == up).all()


def test_int8_from_onnx_end_to_end(tmp_path):
    calib = write_images(tmp_path / "calib", 8, (120, 100))
    src = _src("safmn")
    settings = Q.QuantSettings(**{**SMALL.__dict__, "target_drop_db": 0.0})
    out, rep = Q.int8_from_onnx(src, calib, settings)
    n = len(Q.conv_sites(src.model))
    assert len(rep.int8_layers) + len(rep.kept_layers) == n and len(rep.sensitivity) == n
    # Layers go back to higher precision most-sensitive first.
    order = [r["layer"] for r in rep.sensitivity]
    assert rep.kept_layers == order[: len(rep.kept_layers)]
    assert rep.calibration_images == 6 and rep.held_out_images == 2
    meta = {p.key: p.value for p in out.model.metadata_props}
    assert meta["srx.precision"] == "int8" and json.loads(meta["srx.int8"])["high_precision"] == "fp16"
    types = tensor_types(out.model)
    dqs = [n for n in out.model.graph.node if n.op_type == "DequantizeLinear"]
    assert dqs and all(types[n.output[0]] == TensorProto.FLOAT16 for n in dqs)  # DQ -> Conv in FP16, no Cast
    x = natural_batch(27, 31, seed=5)
    ref, got = ort_run(src.model, x), ort_run(out.model, x)
    assert got.shape == ref.shape and np.isfinite(got).all()
    assert np.abs(got - ref).max() < 0.25  # random weights, every conv in INT8: coarse, but the same image


def test_fp32_high_precision_keeps_the_graph_fp32(tmp_path):
    calib = write_images(tmp_path / "calib", 4, (80, 80))
    src = _src("safmnpp-light")
    out, rep = Q.int8_from_onnx(src, calib, Q.QuantSettings(**{**SMALL.__dict__, "high_precision": "fp32"}))
    assert TensorProto.FLOAT16 not in set(tensor_types(out.model).values())
    assert rep.high_precision == "fp32"


def test_quantize_refuses_non_fp32_and_bad_settings(tmp_path):
    calib = write_images(tmp_path / "calib", 3, (64, 64))
    with pytest.raises(BadInput, match="fp16 or fp32"):
        Q.int8_from_onnx(_src(), calib, Q.QuantSettings(high_precision="bf16"))
    with pytest.raises(BadInput, match="at least 1"):
        Q.quantize_file(tmp_path / "x.onnx", calib, settings=Q.QuantSettings(held_out_images=0))
    with pytest.raises(BadInput, match="use 8, or 7"):
        Q.quantize_file(tmp_path / "x.onnx", calib, settings=Q.QuantSettings(weight_bits=4))


def test_max_psnr_drop_gate_writes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_bytes("safmnpp"))
    calib = write_images(tmp_path / "calib", 3, (64, 64))
    src = _src("safmnpp")

    def fake(src_, calib_dir, settings, progress=None):
        rep = Q.Int8Report(psnr_drop_db=0.4, held_out_images=2, psnr_vs_fp32=40.0)
        return src, rep

    monkeypatch.setattr(Q, "int8_from_onnx", fake)
    with pytest.raises(CheckFailed, match=r"0\.400 dB"):
        Q.quantize_file(path, calib, tmp_path / "out.onnx", max_psnr_drop=0.15)
    assert not (tmp_path / "out.onnx").exists()
    r = Q.quantize_file(path, calib, tmp_path / "out.onnx", max_psnr_drop=0.5).to_json()
    assert (tmp_path / "out.onnx").is_file() and r["psnr_drop_db"] == 0.4


@pytest.mark.parametrize("arch", ["safmn", "safmn-ntire23", "safmnpp"])
def test_switchable_model_equals_one_layer_qdq(arch):
    """The one-session sensitivity graph gives what quantizing each layer alone gives."""
    src = _src(arch)
    base = Q.upgrade_opset(src.model, Q.MIN_FP16_QDQ_OPSET)
    sites = Q.conv_sites(base)
    ranges = {s.act: 1.5 for s in sites}
    switch = Q.session(Q.switchable_model(base, sites, ranges, fp16_scales=True))
    x = natural_batch(21, 19, batch=2, seed=7)
    for k, site in enumerate(sites):
        mask = np.zeros(len(sites), np.float32)
        mask[k] = 1.0
        got = switch.run(None, {"lr": x, Q.MASK_INPUT: mask})[0]
        want = Q.session(Q.qdq_model(base, sites, ranges, {site.layer}, fp16_scales=True)).run(None, {"lr": x})[0]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=site.layer)
    off = switch.run(None, {"lr": x, Q.MASK_INPUT: np.zeros(len(sites), np.float32)})[0]
    np.testing.assert_array_equal(off, Q.session(base).run(None, {"lr": x})[0])


@pytest.mark.parametrize(
    "damage", ['{"int8_layers": 3, "high_precision": ', '["fp16"]', '{"high_precision": "int4"}'], ids=str
)
def test_a_damaged_int8_report_is_refused_never_read_as_another_precision(tmp_path, damage):
    from conftest import run_srx

    from srx.export.metadata import META_INT8, set_metadata

    out, _ = Q.int8_from_onnx(_src("safmn"), write_images(tmp_path / "calib", 8, (120, 100)), SMALL)
    model = out.model
    set_metadata(model, {META_INT8: damage})
    path = tmp_path / "m.int8.onnx"
    onnx.save(model, str(path))
    with pytest.raises(BadInput, match=r"srx\.int8"):
        srx_onnx_from_model(model, origin=str(path))
    for args in (["build-engine", str(path)], ["info", str(path)]):
        proc = run_srx(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "srx.int8" in lines[0] and "srx quantize" in lines[0], (args, lines)
    assert not list(tmp_path.glob("*.engine"))
