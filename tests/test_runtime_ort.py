"""onnxruntime on srx's export: the GELU rewrite, static / dynamic graphs, and exactness against PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from srx.bench.inputs import synthetic_image
from srx.export.model import onnx_from_model
from srx.models import build_model
from srx.runtime import ModelSource, check_backend, open_runner
from srx.runtime.ort_graph import fuse_for_onnxruntime

ort = pytest.importorskip("onnxruntime")

ARCHS = {
    "safmn": {"dim": 8, "n_blocks": 2},
    "safmn-ntire23": {"dim": 8, "n_blocks": 1},
    "safmnpp": {"dim": 9, "n_blocks": 1},
    "safmnpp-light": {"dim": 8, "n_blocks": 1},
}
GELUS = {"safmn": 2 * 2, "safmn-ntire23": 2, "safmnpp": 3, "safmnpp-light": 3}  # per the module trees


def _images(h, w, n=1, seed=0):
    return np.stack([synthetic_image(h, w, seed + i) for i in range(n)])


def _torch(model, x):
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def _session(proto):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_gelu_rewrite_replaces_every_exact_gelu_and_keeps_the_output(arch):
    model = build_model(arch, 2, **ARCHS[arch], seed=4)
    proto = onnx_from_model(model)
    fused, report = fuse_for_onnxruntime(proto)
    assert report.gelu == GELUS[arch]
    ops = [n.op_type for n in fused.graph.node]
    assert "Erf" not in ops and ops.count("Gelu") == report.gelu
    assert len(ops) == len(proto.graph.node) - 4 * report.gelu
    assert [n.op_type for n in proto.graph.node].count("Erf") == report.gelu  # the input is not modified
    x = _images(17, 23, n=2)
    ref = _torch(model, x)
    got = _session(fused).run(["sr"], {"lr": x})[0]
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-5


def _gelu_graph(shared_tensor: bool, divide: bool):
    """y = GELU(x) written as srx's export writes it (or with Div by sqrt 2); optionally
    with the Erf input also used elsewhere, which must block the rewrite."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])
    outs = [y]
    consts = [
        helper.make_tensor("c_scale", TensorProto.FLOAT, [], [np.sqrt(2.0) if divide else np.sqrt(0.5)]),
        helper.make_tensor("c_one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("c_half", TensorProto.FLOAT, [], [0.5]),
    ]
    nodes = [
        helper.make_node("Div" if divide else "Mul", ["x", "c_scale"], ["s"], name="act/Mul"),
        helper.make_node("Erf", ["s"], ["e"], name="act/Erf"),
        helper.make_node("Add", ["e", "c_one"], ["a"], name="act/Add"),
        helper.make_node("Mul", ["x", "c_half"], ["h"], name="act/Mul_1"),
        helper.make_node("Mul", ["h", "a"], ["y"], name="act/Mul_2"),
    ]
    if shared_tensor:
        nodes.append(helper.make_node("Neg", ["s"], ["z"], name="other/Neg"))
        outs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 5]))
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], outs, consts), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    return model


@pytest.mark.parametrize("divide", [False, True])
def test_gelu_rewrite_on_a_hand_written_graph(divide):
    fused, report = fuse_for_onnxruntime(_gelu_graph(shared_tensor=False, divide=divide))
    assert report.gelu == 1 and [n.op_type for n in fused.graph.node] == ["Gelu"]
    x = np.linspace(-4, 4, 10, dtype=np.float32).reshape(2, 5)
    ref = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_session(fused).run(["y"], {"x": x})[0], ref, atol=1e-6)


def test_gelu_rewrite_leaves_shared_intermediates_alone():
    _, report = fuse_for_onnxruntime(_gelu_graph(shared_tensor=True, divide=False))
    assert report.gelu == 0


@pytest.fixture(scope="module")
def paper_small():
    return build_model("safmn", 3, dim=12, n_blocks=2, seed=7)


@pytest.mark.parametrize(
    "options",
    [{}, {"static": False}, {"fuse": False}, {"specialize": False}, {"spinning": False, "threads": 1}],
)
def test_onnxruntime_runner_equals_pytorch(paper_small, options):
    """Every session variant on the exact export, sizes that are and are not multiples of 8."""
    with ModelSource.from_module(paper_small) as src, open_runner("onnxruntime", src, "cpu", **options) as r:
        for h, w, n in ((24, 40, 1), (19, 45, 1), (19, 45, 2)):
            x = _images(h, w, n, seed=h)
            got = r.run(x)
            assert np.abs(got - _torch(paper_small, x)).max() < 1e-5, (h, w, n)
        graphs = r.describe()["graphs"]
    if options.get("specialize", True) and options.get("static", True):
        assert graphs["1x3x24x40"].startswith("static 40x24") and graphs["2x3x19x45"].startswith("dynamic")
    elif options.get("specialize", True):
        assert all(v.startswith("dynamic, dims pinned") for v in graphs.values())
    else:
        assert graphs == {"any": "dynamic"}


def test_source_exports_once_and_cleans_up(paper_small):
    src = ModelSource.from_module(paper_small)
    assert src.exports_onnx and check_backend("onnxruntime", "cpu", src).ok
    dyn = src.onnx_path()
    assert src.onnx_path() == dyn and src.onnx_exported
    static = src.onnx_path((24, 40))
    meta = {p.key: p.value for p in onnx.load(str(static)).metadata_props}
    assert meta["srx.dynamic"] == "false" and meta["srx.input_shape"] == "1,3,24,40"
    work = src.workdir()
    src.close()
    assert not work.exists() and not src.onnx_exported


def test_a_given_onnx_file_is_run_as_it_is(tmp_path, paper_small):
    path = tmp_path / "m.onnx"
    onnx.save(onnx_from_model(paper_small), str(path))
    src = ModelSource.from_file(path)
    src._module = paper_small  # as `--weights` with `--model`: the file is what onnxruntime runs
    assert not src.exports_onnx and src.onnx_path((24, 40)) == path
    with open_runner("onnxruntime", src, "cpu") as r:
        x = _images(24, 40)
        assert np.abs(r.run(x) - _torch(paper_small, x)).max() < 1e-5
        assert r.describe()["graphs"] == {"1x3x24x40": "dynamic, dims pinned per input shape"}
    assert path.exists()
