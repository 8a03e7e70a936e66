"""srx.export: the hand-written ONNX graph against PyTorch (onnxruntime CPU, FP32).

Tolerance 1e-4 absolute on outputs of magnitude ~1 (issue 3); measured differences are
~1e-6 (float rounding in convs, GELU, bilinear resizing). Pooling windows and nearest
indices are exact: the exhaustive index test compares them bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from conftest import REAL_CHECKPOINTS, weight_path
from onnx import TensorProto, helper

from srx.errors import BadInput, CheckFailed
from srx.export import DEFAULT_OPSET, FP32_TOLERANCE, MAX_OPSET, MIN_OPSET
from srx.export.graph import GraphBuilder
from srx.export.layers import adaptive_max_pool, nearest_resize, nearest_source_indices, pool_indices
from srx.export.metadata import (
    META_DYNAMIC,
    META_OPSET,
    META_PRECISION,
    META_SOURCE_SHA256,
    META_SPEC,
    META_VERSION,
    metadata,
    read_srx_onnx,
)
from srx.export.model import export_onnx, onnx_from_model, simplify_onnx
from srx.export.verify import VerifyCase, verification_cases, verify_onnx
from srx.models import ARCHS, build_model, load_model
from srx.sizes import Size
from srx.synthetic import natural_image


def session(proto: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def random_sizes(n: int, lo: int, hi: int, seed: int) -> list[tuple[int, int]]:
    """(height, width) pairs, each side log-uniform in [lo, hi]: every scale of size is
    drawn, and most sizes are small and odd, where the uneven pooling windows are
    densest, which also keeps the PyTorch reference affordable on a 2-core CPU."""
    rng = np.random.default_rng(seed)
    sides = np.exp(rng.uniform(math.log(lo), math.log(hi + 1), size=(n, 2))).astype(int)
    return [(int(h), int(w)) for h, w in np.clip(sides, lo, hi)]


def max_diff_at_sizes(model: torch.nn.Module, sizes: list[tuple[int, int]]) -> list[tuple[tuple[int, int], float]]:
    sess = session(onnx_from_model(model))
    out = []
    for k, (h, w) in enumerate(sizes):
        x = natural_image(h, w, seed=k)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run(None, {"lr": x})[0]
        assert got.shape == ref.shape == (1, 3, h * model.spec.scale, w * model.spec.scale)
        out.append(((h, w), float(np.max(np.abs(got - ref)))))
    return out


# -- acceptance: 20 random sizes between the minimum and 512 per side ---------------------


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_paper_safmn_random_weights_at_20_sizes(scale):
    model = build_model("safmn", scale, seed=100 + scale)  # LayerNorm weights and biases randomised too
    sizes = random_sizes(20, model.spec.min_size, 512, seed=scale)
    assert max(max(s) for s in sizes) >= 256, "the draw should reach large sizes too"
    diffs = max_diff_at_sizes(model, sizes)
    bad = [(s, d) for s, d in diffs if not d <= FP32_TOLERANCE]
    assert not bad, f"over {FP32_TOLERANCE}: {bad}"


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(REAL_CHECKPOINTS))
def test_real_checkpoints_at_20_sizes(name):
    model = load_model(weight_path(name))
    sizes = random_sizes(20, model.spec.min_size, 512, seed=len(name))
    diffs = max_diff_at_sizes(model, sizes)
    bad = [(s, d) for s, d in diffs if not d <= FP32_TOLERANCE]
    assert not bad, f"over {FP32_TOLERANCE}: {bad}"


# -- exactness of the index arithmetic at every size -----------------------------------------


@pytest.fixture
def one_torch_thread():
    """Thousands of tiny PyTorch ops: thread start-up and barriers would dominate."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _index_session(axis: int, factor: int) -> ort.InferenceSession:
    """A graph holding only one axis's index tensors, as the exporter builds them."""
    b = GraphBuilder(DEFAULT_OPSET)
    start, last = pool_indices(b, axis, factor)
    src = nearest_source_indices(b, axis, factor)
    lr = helper.make_tensor_value_info("lr", TensorProto.FLOAT, [1, 1, "h", "w"])
    outs = [helper.make_tensor_value_info(t, TensorProto.INT64, ["n"]) for t in (start, last, src)]
    return session(b.model([lr], outs, graph_name="index_tensors"))


@pytest.mark.parametrize("axis", [2, 3])
@pytest.mark.parametrize("factor", [2, 4, 8, 16])
def test_index_tensors_equal_pytorch_up_to_4k(axis, factor, one_torch_thread):
    """Every side length from `factor` to 4096: the ONNX pooling windows and nearest source
    indices are PyTorch's. PyTorch's own ops report them: adaptive max pooling of an
    increasing ramp returns each window's last index, of a decreasing ramp its first;
    nearest resizing of a ramp returns the source indices."""
    sess = _index_session(axis, factor)
    for n in range(factor, 4097):
        shape = [1, 1, n, 1] if axis == 2 else [1, 1, 1, n]
        start, last, src = sess.run(None, {"lr": np.zeros(shape, np.float32)})
        ramp = torch.arange(n, dtype=torch.float32).reshape(1, 1, n)
        o = n // factor
        _, stop_minus_1 = F.adaptive_max_pool1d(ramp, o, return_indices=True)
        _, first = F.adaptive_max_pool1d(-ramp, o, return_indices=True)
        assert np.array_equal(start, first.reshape(-1).numpy()), n
        assert np.array_equal(last + factor - 1, stop_minus_1.reshape(-1).numpy()), n
        # f <= window length <= 2f: the length-f windows at start and stop - f cover it.
        length = last + factor - start
        assert length.min() >= factor and length.max() <= 2 * factor, n
        ref_src = F.interpolate(torch.arange(o, dtype=torch.float32).reshape(1, 1, o), size=n, mode="nearest")
        assert np.array_equal(src, ref_src.reshape(-1).numpy().astype(np.int64)), n


@pytest.mark.parametrize("factor", [2, 4, 8, 16])
def test_pool_and_nearest_graph_is_exact(factor, one_torch_thread):
    """The emitted MaxPool / Gather / Max and Gather resize equal F.adaptive_max_pool2d and
    F.interpolate(nearest) bit for bit, every side length up to 300 on both axes."""
    b = GraphBuilder(DEFAULT_OPSET)
    pooled = adaptive_max_pool(b, "pool", "lr", factor)
    b.rename_output(nearest_resize(b, "up", pooled, factor), "sr")
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, "h", "w"]) for n in ("lr", "sr")]
    graph_out = [io[1], helper.make_tensor_value_info(pooled, TensorProto.FLOAT, None)]
    sess = session(b.model([io[0]], graph_out, graph_name="pool_resize"))
    g = torch.Generator().manual_seed(factor)
    for n in range(factor, 301):
        short = factor + (n * 37) % 61
        for h, w in ((n, short), (short, n)):
            x = torch.randn(1, 2, h, w, generator=g)
            up, pool = sess.run(None, {"lr": x.numpy()})
            ref_pool = F.adaptive_max_pool2d(x, (h // factor, w // factor))
            assert np.array_equal(pool, ref_pool.numpy()), (h, w)
            assert np.array_equal(up, F.interpolate(ref_pool, size=(h, w), mode="nearest").numpy()), (h, w)


# -- shapes, opsets, batch -------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_verifies_with_batch_2_and_odd_sizes(arch):
    model = build_model(arch, 3, seed=5)
    m = model.spec.min_size
    cases = [VerifyCase(23, 17, 2, seed=1), VerifyCase(m, m, 1), VerifyCase(29, 45, 1)]
    for r in verify_onnx(onnx_from_model(model), model, cases):
        assert r.passed(FP32_TOLERANCE), (arch, r)


@pytest.mark.parametrize("opset", range(MIN_OPSET, MAX_OPSET + 1))
def test_supported_opsets_verify_and_pass_the_checker(opset):
    model = build_model("safmn-ntire23", 2, dim=16, n_blocks=2, seed=opset)
    proto = onnx_from_model(model, opset=opset)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == opset
    assert proto.ir_version == helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    (r,) = verify_onnx(proto, model, [VerifyCase(41, 19, 2)])
    assert r.passed(FP32_TOLERANCE), r


@pytest.mark.parametrize("opset", [MIN_OPSET - 1, MAX_OPSET + 1, 11])
def test_unsupported_opsets_are_refused(opset):
    with pytest.raises(BadInput, match=f"--opset {opset} is not supported: use {MIN_OPSET} to {MAX_OPSET}"):
        onnx_from_model(build_model("safmnpp-light", 2, dim=8, n_blocks=1), opset=opset)


@pytest.mark.parametrize(
    ("arch", "size"), [("safmn", Size(61, 37)), ("safmn", Size(64, 48)), ("safmnpp", Size(45, 29))]
)
def test_static_export_has_fixed_shapes_no_shape_ops_and_verifies(arch, size):
    model = build_model(arch, 4, seed=9)
    proto = onnx_from_model(model, dynamic=False, input_size=size)
    onnx.checker.check_model(proto, full_check=True)
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"Shape", "Range", "Cast", "Floor"}, ops
    dims = [[d.dim_value for d in v.type.tensor_type.shape.dim] for v in (*proto.graph.input, *proto.graph.output)]
    assert dims == [[1, 3, size.height, size.width], [1, 3, 4 * size.height, 4 * size.width]]
    assert metadata(proto)[META_DYNAMIC] == "false"
    (r,) = verify_onnx(proto, model, verification_cases(model.spec, size, dynamic=False))
    assert r.passed(FP32_TOLERANCE), r


def test_static_export_below_the_minimum_is_refused():
    with pytest.raises(BadInput, match="smaller than this model's minimum of 16x16"):
        onnx_from_model(build_model("safmn-ntire23", 4), dynamic=False, input_size=Size(40, 15))


# -- graph structure: names, counts, metadata ---------------------------------------------


def test_node_names_follow_module_paths():
    model = build_model("safmn", 4)
    proto = onnx_from_model(model)
    names = {n.name for n in proto.graph.node}
    ln = ["ReduceMean", "Sub", "Pow", "ReduceMean_1", "Add", "Sqrt", "Div", "Mul", "Add_1"]
    for op in ln:
        assert f"feats.3.norm1/{op}" in names and f"feats.7.norm2/{op}" in names, op
    for name in ("feats.3.safm.aggr/Conv", "feats.0.safm.pool3/MaxPool", "feats.0.safm.up1/Gather", "/Add"):
        assert name in names, name
    assert "to_img.1/DepthToSpace" in names and "feats.2.ccm.ccm.1/Erf" in names
    # Every conv is named after its weight's module path, and every weight is in the graph.
    inits = {i.name for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Conv":
            assert node.name == node.input[1].removesuffix(".weight") + "/Conv"
    assert set(model.state_dict()) <= inits


@pytest.mark.parametrize("arch", ARCHS)
def test_node_counts_match_the_module_tree(arch):
    model = build_model(arch, 2)
    proto = onnx_from_model(model)
    ops = [n.op_type for n in proto.graph.node]
    n_convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert ops.count("Conv") == n_convs
    simple_safm = arch.startswith("safmnpp")
    assert ops.count("DepthToSpace") == 1
    # One Shape for all index tensors, plus one per bilinear resize to a feature map's size.
    assert ops.count("Shape") == 1 + simple_safm * len(model.feats)
    assert all(n.domain == "" for n in proto.graph.node), "no custom ops"
    if arch == "safmn":
        assert ops.count("Pow") == ops.count("Sqrt") == 2 * len(model.feats)
        assert ops.count("Erf") == 2 * len(model.feats)  # SAFM act + CCM act per block
    if simple_safm:
        assert ops.count("Erf") == 3 * len(model.feats)  # 2 in SimpleSAFM + 1 in CCM
    # Index tensors are computed once per (axis, factor), not per block.
    assert ops.count("Range") == 2 * len(model.pool_factors) + 2 * (not simple_safm)


def test_index_math_has_no_float_division():
    """Nearest indices must not depend on how a runtime rounds float32 division
    (fast-math GPU kernels): every Div in the index subgraphs is an integer Div."""
    proto = onnx.shape_inference.infer_shapes(onnx_from_model(build_model("safmn", 4)), strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in proto.graph.value_info}
    divs = [n for n in proto.graph.node if n.name.startswith("index.") and n.op_type == "Div"]
    assert divs and all(types[n.output[0]] == TensorProto.INT64 for n in divs)
    index_ops = {n.op_type for n in proto.graph.node if n.name.startswith("index.")}
    assert index_ops <= {"Shape", "Gather", "Div", "Mul", "Add", "Sub", "Range", "Cast", "Floor", "Min"}, index_ops


def test_simplification_keeps_interface_names_and_exactness():
    model = build_model("safmn", 4, dim=16, n_blocks=2, seed=3)
    raw = onnx_from_model(model)
    slim = simplify_onnx(raw)
    assert len(slim.graph.node) <= len(raw.graph.node)
    assert {n.name for n in slim.graph.node} <= {n.name for n in raw.graph.node}
    sig = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in slim.graph.input]
    assert sig == [["batch", 3, "height", "width"]]
    ops = {n.op_type for n in slim.graph.node}
    assert {"Shape", "Range", "Gather"} <= ops, "index math must stay symbolic, not folded to one size"
    assert metadata(slim) == metadata(raw) and slim.ir_version == raw.ir_version
    for r in verify_onnx(slim, model, [VerifyCase(57, 35, 1), VerifyCase(80, 24, 2)]):
        assert r.passed(FP32_TOLERANCE), r


def test_metadata_round_trip(tmp_path):
    model = build_model("safmnpp", 2, seed=4, source="unit test", source_sha256="ab" * 32)
    report = export_onnx(model, tmp_path / "m.onnx", opset=17, input_size=Size(33, 21))
    info = read_srx_onnx(tmp_path / "m.onnx")
    assert info.spec == model.spec
    assert info.opset == 17 and info.ir_version == 8 and info.precision == "fp32" and info.dynamic
    assert info.input_dims == ["batch", 3, "height", "width"]
    assert info.output_dims == ["batch", 3, "height*2", "width*2"]
    assert info.nodes == report.nodes and info.op_counts["Conv"] == 1 + 6 * len(model.feats) - len(model.feats) + 1
    meta = info.metadata
    assert meta[META_SPEC] and meta[META_VERSION] and meta[META_PRECISION] == "fp32"
    assert meta[META_SOURCE_SHA256] == "ab" * 32 and meta[META_OPSET] == "17" and meta[META_DYNAMIC] == "true"
    assert [r.case.input for r in report.verify] == ["33x21", "97x61", "19x8"]
    assert report.verify[1].case.batch == 2


def test_verification_failure_writes_nothing(tmp_path):
    out = tmp_path / "m.onnx"
    with pytest.raises(CheckFailed, match="over the tolerance 0; nothing was written"):
        export_onnx(build_model("safmnpp-light", 2, dim=8, n_blocks=1), out, input_size=Size(16, 16), tolerance=0.0)
    assert list(tmp_path.iterdir()) == []


def test_modules_the_exporter_does_not_know_are_refused():
    model = build_model("safmnpp-light", 2, dim=8, n_blocks=1)
    model.feats[0].conv2.conv[1].approximate = "tanh"
    with pytest.raises(ValueError, match="approximate='tanh'"):
        onnx_from_model(model)
    with pytest.raises(TypeError, match="no ModelSpec"):
        onnx_from_model(torch.nn.Conv2d(3, 3, 3))


@pytest.mark.shared
def test_team15_onnx_scores_the_same_set5_psnr_as_pytorch():
    """Issue 3 acceptance: the same Set5 x4 Y-PSNR within 0.001 dB. LR images here are
    Pillow-bicubic (srx eval owns the MATLAB-compatible resize); what is compared is
    ONNX against PyTorch on identical LR inputs, both clamped and rounded to 8 bits."""
    from conftest import DATA
    from PIL import Image

    model = load_model(weight_path("team15_SAFMN.pth"))
    sess = session(onnx_from_model(model))
    psnr_torch, psnr_onnx = [], []
    for path in sorted((DATA / "benchmarks" / "Set5" / "HR").glob("*.png")):
        hr = Image.open(path).convert("RGB")
        hr = hr.crop((0, 0, hr.width - hr.width % 4, hr.height - hr.height % 4))
        lr = np.asarray(hr.resize((hr.width // 4, hr.height // 4), Image.BICUBIC), dtype=np.float32) / 255
        x = lr.transpose(2, 0, 1)[None].copy()
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run(None, {"lr": x})[0]
        target = np.asarray(hr, dtype=np.float64)
        psnr_torch.append(_y_psnr(ref, target, border=4))
        psnr_onnx.append(_y_psnr(got, target, border=4))
    assert len(psnr_torch) == 5 and 25 < np.mean(psnr_torch) < 40
    assert abs(np.mean(psnr_onnx) - np.mean(psnr_torch)) <= 0.001, (psnr_onnx, psnr_torch)
    assert np.max(np.abs(np.subtract(psnr_onnx, psnr_torch))) <= 0.001


def _y_psnr(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """PSNR of BT.601 luma (16..235) between an output in [0, 1] and an 8-bit HR image."""
    img = np.round(np.clip(sr[0].transpose(1, 2, 0), 0, 1) * 255)
    weights = np.array([65.481, 128.553, 24.966]) / 255
    y_sr, y_hr = img @ weights + 16, hr @ weights + 16
    diff = (y_sr - y_hr)[border:-border, border:-border]
    return float(10 * np.log10(255**2 / np.mean(diff**2)))
