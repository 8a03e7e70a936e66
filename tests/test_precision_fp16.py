"""FP16 pass: fragile ops stay FP32 (checked on tensor types), FP32 I/O, accuracy in onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from onnx_models import TINY_DIMS, natural_batch, onnx_bytes, ort_run

from srx.errors import BadInput
from srx.export.metadata import srx_onnx_from_model
from srx.precision.fp16 import FRAGILE_OPS, fp16_from_onnx
from srx.precision.graph import in_norm_module, module_path, tensor_types

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16


def _pair(arch: str):
    src = srx_onnx_from_model(onnx.load_from_string(onnx_bytes(arch)))
    half, report = fp16_from_onnx(src)
    return src, half, report


def _float_io(model: onnx.ModelProto, node: onnx.NodeProto, types: dict[str, int]) -> list[tuple[str, int]]:
    # Resize's scales / roi are float32 by definition, whatever the data type.
    inputs = node.input[:1] if node.op_type == "Resize" else node.input
    names = [*inputs, *node.output]
    return [(n, types[n]) for n in names if n and types.get(n) in (FLOAT, HALF)]


@pytest.mark.parametrize("arch", ["safmn", "safmn-ntire23"])
def test_normalisations_and_reductions_stay_fp32(arch):
    _src, half, report = _pair(arch)
    m = half.model
    types = tensor_types(m)
    norm_nodes = [n for n in m.graph.node if in_norm_module(n.name)]
    assert norm_nodes, "the exporter's node names should put LayerNorm / GRN under norm modules"
    for node in norm_nodes:
        # The border Casts belong to the island: FP16 in, FP32 out.
        io = [(node.output[0], types[node.output[0]])] if node.op_type == "Cast" else _float_io(m, node, types)
        bad = [(t, TensorProto.DataType.Name(d)) for t, d in io if d != FLOAT]
        assert not bad, f"{node.name} ({node.op_type}) has non-FP32 tensors {bad}"
    for node in m.graph.node:
        if node.op_type in FRAGILE_OPS:
            assert all(d == FLOAT for _, d in _float_io(m, node, types)), node.name
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    assert convs and all(types[n.input[0]] == HALF and types[n.input[1]] == HALF for n in convs)
    expected = ["norm"] if arch == "safmn-ntire23" else ["feats.0.norm1", "feats.0.norm2"]
    assert report.fp32_modules == expected
    # The channel LayerNorm squares (x - mean) and adds eps = 1e-6 in FP32 (eps is not an FP16 normal).
    if arch == "safmn":
        pows = [n for n in m.graph.node if n.op_type == "Pow"]
        assert pows and all(module_path(n.name).endswith(("norm1", "norm2")) for n in pows)


@pytest.mark.parametrize("arch", ["safmn", "safmn-ntire23", "safmnpp", "safmnpp-light"])
def test_io_stays_fp32_and_casts_mark_island_borders(arch):
    src, half, _ = _pair(arch)
    g = half.model.graph
    assert g.input[0].type.tensor_type.elem_type == FLOAT and g.output[0].type.tensor_type.elem_type == FLOAT
    types = tensor_types(half.model)
    # Every FP16 <-> FP32 change happens in an explicit Cast.
    for node in g.node:
        if node.op_type in ("Cast", "Shape", "QuantizeLinear", "DequantizeLinear"):
            continue
        kinds = {d for _, d in _float_io(half.model, node, types)}
        assert len(kinds) <= 1, f"{node.name} mixes FP16 and FP32 without a Cast"
    # Index arithmetic derived from the input's shape is not image data: untouched.
    index_nodes = [n for n in g.node if module_path(n.name).startswith("index")]
    assert all(types.get(o) != HALF for n in index_nodes for o in n.output)
    meta = {p.key: p.value for p in half.model.metadata_props}
    assert (
        meta["srx.precision"] == "fp16"
        and meta["srx.spec"] == {p.key: p.value for p in src.model.metadata_props}["srx.spec"]
    )


@pytest.mark.parametrize("arch", ["safmn", "safmn-ntire23", "safmnpp", "safmnpp-light"])
def test_fp16_matches_fp32_in_onnxruntime(arch):
    pytest.importorskip("onnxruntime")
    src, half, _ = _pair(arch)
    x = natural_batch(29, 37, batch=2, seed=3)  # odd sizes, above every model's minimum
    ref, out = ort_run(src.model, x), ort_run(half.model, x)
    assert out.dtype == np.float32 and out.shape == ref.shape == (2, 3, 29 * 4, 37 * 4)
    assert np.isfinite(out).all()
    err = np.abs(out - ref)
    # FP16 keeps 11 significant bits: a few 1e-3 on outputs of order 1 after a dozen layers.
    assert err.max() < 2e-2 and err.mean() < 2e-3, f"max {err.max():.3g} mean {err.mean():.3g}"


def test_fp16_refuses_a_model_that_is_already_fp16():
    _src, half, _ = _pair("safmnpp")
    with pytest.raises(BadInput, match="already FP16"):
        fp16_from_onnx(half)


def test_tiny_dims_fit_the_architectures():
    # dim must split into SAFM's chunks (4, 4, 3, 2): a bad table would fail far from here.
    assert TINY_DIMS["safmn"] % 4 == 0 and TINY_DIMS["safmnpp"] % 3 == 0 and TINY_DIMS["safmnpp-light"] % 2 == 0
