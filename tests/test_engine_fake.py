"""engine_from_onnx on stand-in TensorRT modules (8.6, 10.x, 11.x): flags, pinning, files, errors.

The real enterprise builder cannot be installed here; these tests check what srx asks of
it, against fakes that refuse what each version refuses (tests/trt_fakes.py).
"""

from __future__ import annotations

import json

import pytest
from onnx_models import write_images, write_onnx
from trt_fakes import make_trt

from srx.engines.build import engine_from_onnx, precision_onnx_path
from srx.engines.network import onnx_op_of
from srx.errors import BadInput, CheckFailed
from srx.precision.int8 import QuantSettings
from srx.runtime.cudart import DeviceInfo

ORIN = DeviceInfo("Orin", "8.7", 7600, 8, jetson=True, jetson_release="R36 (release), REVISION: 4.3")
SMALL_Q = QuantSettings(calibration_images=4, held_out_images=1, crop=24, sensitivity_crops=2, sensitivity_crop=24)


def build(tmp_path, version, *, arch="safmn", opset=19, **kw):
    trt = make_trt(version)
    onnx_path = write_onnx(tmp_path, arch, opset=opset)
    out = tmp_path / "m.engine"
    r = engine_from_onnx(onnx_path, out, backend="tensorrt", trt_module=trt, device=ORIN, **kw).to_json()
    return trt, r, json.loads((tmp_path / "m.engine.json").read_text())


def test_trt86_fp16_is_weakly_typed_with_norms_pinned(tmp_path):
    trt, r, side = build(tmp_path, "8.6.2.3", opset=17, precision="fp16")
    b = trt.Builder.last
    assert b.network.flags == 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    assert b.config.flags == {"FP16", "OBEY_PRECISION_CONSTRAINTS"}
    pinned = [layer.name for layer in b.network.layers if layer.precision == trt.float32]
    assert pinned and all(layer.output_types == {0: trt.float32} for layer in b.network.layers if layer.name in pinned)
    # Exactly the two LayerNorms of the one block, nothing else.
    assert {n.split("/")[0] for n in pinned} == {"feats.0.norm1", "feats.0.norm2"}
    assert r["precision_onnx"] is None and side["network"].startswith("weakly typed")
    assert side["pinned_fp32_layers"] == len(pinned)


def test_trt86_refuses_opset_above_17(tmp_path):
    with pytest.raises(BadInput, match="opset <= 17"):
        build(tmp_path, "8.6.1.6", precision="fp16")


def test_trt10_fp16_is_strongly_typed_from_the_fp16_onnx(tmp_path):
    trt, r, side = build(tmp_path, "10.3.0.30", precision="fp16", workspace_mib=512, timing_cache=tmp_path / "t.cache")
    b = trt.Builder.last
    assert b.network.flags == 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert b.config.flags == set() and b.config.pool_limits == {"WORKSPACE": 512 << 20}
    assert r["precision_onnx"] == str(precision_onnx_path(tmp_path / "m.engine", "fp16"))
    assert (tmp_path / "m.fp16.onnx").is_file() and (tmp_path / "t.cache").read_bytes() == b"TIMINGCACHE"
    assert side["device"]["compute_capability"] == "8.7" and side["backend_version"] == "10.3.0.30"
    assert side["profile"] == {"min": "64x64", "opt": "640x360", "max": "1920x1080", "batch": [1, 1, 1]}
    assert [p.shapes for p in b.config.profiles] == [{"lr": ((1, 3, 64, 64), (1, 3, 360, 640), (1, 3, 1080, 1920))}]


def test_trt11_uses_no_precision_flags_and_fp32_turns_tf32_off(tmp_path):
    trt, r, side = build(tmp_path, "11.2.0.4", precision="fp32")
    b = trt.Builder.last
    assert b.network.flags == 0 and b.config.flags == set() and b.config.cleared == {"TF32"}
    assert side["precision"] == "fp32" and r["network"] == "strongly typed"


def test_int8_build_quantizes_first_and_writes_the_qdq_onnx(tmp_path):
    calib = write_images(tmp_path / "calib", 5, (80, 80))
    trt, r, side = build(tmp_path, "10.3.0.30", precision="int8", calib_dir=calib, quant=SMALL_Q)
    assert (tmp_path / "m.int8.onnx").is_file() and side["precision"] == "int8"
    assert r["quantize"]["held_out_images"] == 1 and "psnr_drop_db" in r["quantize"]
    ops = {layer.name.rsplit("/", 1)[-1] for layer in trt.Builder.last.network.layers}
    assert {"input_QuantizeLinear", "weight_DequantizeLinear"} <= ops


def test_int8_on_trt86_quantizes_over_the_fp32_graph(tmp_path):
    import onnx
    from onnx import TensorProto

    calib = write_images(tmp_path / "calib", 5, (80, 80))
    trt, _, _ = build(tmp_path, "8.6.2.3", opset=17, precision="int8", calib_dir=calib, quant=SMALL_Q)
    assert trt.Builder.last.config.flags == {"INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS"}
    q = onnx.load(str(tmp_path / "m.int8.onnx"))
    assert all(i.data_type != TensorProto.FLOAT16 for i in q.graph.initializer)


def test_dla_build_on_trt10(tmp_path):
    trt, _, side = build(
        tmp_path,
        "10.3.0.30",
        precision="fp16",
        target="jetson",
        dla_core=1,
        min_size="320x180",
        opt_size="320x180",
        max_size="320x180",
    )
    c = trt.Builder.last.config
    assert c.default_device_type == trt.DeviceType.DLA and c.DLA_core == 1
    assert {"FP16", "GPU_FALLBACK", "OBEY_PRECISION_CONSTRAINTS"} == c.flags
    assert c.pool_limits == {"WORKSPACE": 1024 << 20}  # Jetson default
    assert side["dla_core"] == 1 and side["target"] == "jetson"


def test_jetson_target_warns_off_device(tmp_path, monkeypatch):
    import srx.runtime.cudart as cudart

    monkeypatch.setattr(cudart, "jetson_release", lambda: None)
    warnings: list[str] = []
    trt = make_trt("10.3.0.30")
    engine_from_onnx(
        write_onnx(tmp_path, "safmnpp"), tmp_path / "x.engine", precision="fp16", backend="tensorrt",
        target="jetson", trt_module=trt, device=ORIN, warn=warnings.append,
    )  # fmt: skip
    assert len(warnings) == 1 and "not a Jetson" in warnings[0]


def test_build_failure_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    trt = make_trt("10.3.0.30")
    real = trt.Builder.__init__

    def failing(self, logger):
        real(self, logger)
        self.fail = True

    monkeypatch.setattr(trt.Builder, "__init__", failing)
    onnx_path = write_onnx(tmp_path, "safmnpp")
    with pytest.raises(CheckFailed, match=r"could not build the engine: fake build failure$"):
        engine_from_onnx(
            onnx_path, tmp_path / "m.engine", precision="fp16", backend="tensorrt", trt_module=trt, device=ORIN
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["safmnpp.onnx"]


def test_conflicting_precision_requests(tmp_path):
    trt = make_trt("10.3.0.30")
    onnx_path = write_onnx(tmp_path, "safmnpp")
    kw = {"backend": "tensorrt", "trt_module": trt, "device": ORIN}
    with pytest.raises(BadInput, match="--int8 needs calibration images"):
        engine_from_onnx(onnx_path, tmp_path / "a.engine", precision="int8", **kw)
    with pytest.raises(BadInput, match="only used with --int8"):
        engine_from_onnx(onnx_path, tmp_path / "a.engine", precision="fp16", calib_dir=tmp_path, **kw)
    with pytest.raises(BadInput, match="must end in"):
        engine_from_onnx(onnx_path, tmp_path / "a.bin", precision="fp16", **kw)
    with pytest.raises(BadInput, match="applies to --backend tensorrt"):
        engine_from_onnx(onnx_path, tmp_path / "a.engine", rtx_targets=["8.6"], **kw)
    engine_from_onnx(onnx_path, tmp_path / "h.engine", precision="fp16", **kw)
    with pytest.raises(BadInput, match="already FP16"):
        engine_from_onnx(tmp_path / "h.fp16.onnx", tmp_path / "b.engine", precision="int8", calib_dir=tmp_path, **kw)


def test_onnx_op_from_layer_names():
    assert onnx_op_of("norm/ReduceL2_1") == "ReduceL2" and onnx_op_of("feats.0.norm1/Pow") == "Pow"
    assert onnx_op_of("Cast_lr__fp16") == "Cast_lr__fp16"
