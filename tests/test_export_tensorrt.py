"""TensorRT takes srx's ONNX: TensorRT-RTX parses each architecture's dynamic export and
builds an engine ahead of time on the CPU (no GPU needed), for 64x64 .. 1920x1080.

TensorRT-RTX shares TensorRT's ONNX parser and builder API (strongly typed only). The
engine is not run here (that needs an RTX-class GPU); `srx build-engine` is tested in
its own issue.
"""

from __future__ import annotations

import pytest

from srx.export import MIN_OPSET
from srx.export.model import onnx_from_model, simplify_onnx
from srx.models import ARCHS, build_model
from srx.sizes import Size

trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is not installed: pip install 'srx[trt-rtx]'")

# (batch, 3, height, width): min, opt, max of the optimisation profile.
PROFILE = ((1, 3, 64, 64), (1, 3, 360, 640), (2, 3, 1080, 1920))


def parse_and_build(onnx_bytes: bytes, profile: tuple | None = PROFILE) -> bytes:
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT-RTX networks are always strongly typed
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse(onnx_bytes)
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    assert ok and not errors, errors
    assert network.num_inputs == 1 and network.get_input(0).name == "lr"
    assert network.num_outputs == 1 and network.get_output(0).name == "sr"
    config = builder.create_builder_config()
    if profile is not None:
        shapes = builder.create_optimization_profile()
        shapes.set_shape("lr", *profile)
        config.add_optimization_profile(shapes)
    engine = builder.build_serialized_network(network, config)
    assert engine is not None, "TensorRT-RTX could not build an engine (see the log above)"
    return bytes(engine)


@pytest.mark.parametrize("arch", ARCHS)
def test_dynamic_export_parses_and_builds(arch):
    # The simplified graph: what `srx export` writes.
    model = build_model(arch, 4)
    engine = parse_and_build(simplify_onnx(onnx_from_model(model)).SerializeToString())
    assert len(engine) > 100_000


def test_static_export_parses_and_builds():
    model = build_model("safmnpp", 4)
    proto = onnx_from_model(model, dynamic=False, input_size=Size(320, 180))
    assert len(parse_and_build(proto.SerializeToString(), profile=None)) > 100_000


def test_opset_17_export_parses_and_builds():
    model = build_model("safmn", 2, dim=16, n_blocks=2)
    assert len(parse_and_build(onnx_from_model(model, opset=MIN_OPSET).SerializeToString())) > 10_000
