"""Runner contract and backend registry: names, availability reasons, validation, torch and onnxruntime runners."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srx.errors import BadInput
from srx.export.metadata import read_srx_onnx
from srx.models import build_model
from srx.runtime import (
    ModelSource,
    backend_names,
    check_backend,
    default_backends,
    open_runner,
    parse_backends,
    validate_input,
)

CLI_BACKENDS = [
    "torch",
    "torch-fp16",
    "torch-fp16-graph",
    "torch-compile",
    "torch-compile-fp16",
    "torch-fused",
    "onnxruntime",
    "openvino",
    "openvino-bf16",
    "openvino-int8",
    "onnxruntime-cuda",
    "tensorrt",
    "tensorrt-rtx",
]


@pytest.fixture(scope="module")
def tiny():
    return build_model("safmn", 2, dim=8, n_blocks=1, seed=3)


def test_every_cli_backend_is_registered():
    assert backend_names() == CLI_BACKENDS


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_every_backend_answers_with_a_reason(device, tiny):
    src = ModelSource.from_module(tiny)
    for name in CLI_BACKENDS:
        a = check_backend(name, device, src)
        assert a.ok or (a.reason and "\n" not in a.reason), (name, a)


def test_cpu_defaults_and_unknown_names():
    fp16 = ("torch-fp16", "torch-fp16-graph", "torch-compile-fp16")
    assert default_backends("cpu") == [n for n in CLI_BACKENDS if n not in fp16]
    # On a GPU: the peers a user would pick (eager FP32 and FP16, FP16 + CUDA graph, torch.compile
    # FP16 reduce-overhead), srx's fused kernels and every engine; FP32 torch.compile on request.
    cpu_runtimes = ("torch-compile", "onnxruntime", "openvino", "openvino-bf16", "openvino-int8")
    assert default_backends("cuda") == [n for n in CLI_BACKENDS if n not in cpu_runtimes]
    assert parse_backends("torch, onnxruntime,torch") == ["torch", "onnxruntime"]
    assert parse_backends("all") == CLI_BACKENDS
    with pytest.raises(BadInput, match="unknown backend 'tensort'"):
        parse_backends("torch,tensort")


def test_unavailable_backend_refuses_to_open(tiny):
    src = ModelSource.from_module(tiny)
    with pytest.raises(BadInput, match="cannot run"):
        open_runner("onnxruntime-cuda", src, "cpu")


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((1, 3, 16, 16), np.uint8), "float32"),
        (np.zeros((3, 16, 16), np.float32), "NCHW"),
        (np.zeros((1, 4, 16, 16), np.float32), "4 channels"),
        (np.zeros((1, 3, 7, 16), np.float32), "smaller than"),
        (np.zeros((0, 3, 16, 16), np.float32), "empty batch"),
    ],
)
def test_input_validation(array, message, tiny):
    with pytest.raises(BadInput, match=message):
        validate_input(array, tiny.spec)


def test_validation_casts_float64_and_accepts_tensors(tiny):
    x = validate_input(np.zeros((1, 3, 9, 11)), tiny.spec)
    assert x.dtype == np.float32 and x.flags.c_contiguous
    assert validate_input(torch.zeros(1, 3, 9, 11), tiny.spec).shape == (1, 3, 9, 11)


def test_torch_runner_equals_the_module_and_frees(tiny):
    x = torch.rand(2, 3, 17, 23)
    with torch.no_grad():
        ref = tiny(x).numpy()
    runner = open_runner("torch", ModelSource.from_module(tiny), "cpu")
    with runner as r:
        out = r.run(x.numpy())
        assert r.active
    assert not runner.active and not hasattr(runner, "model")
    np.testing.assert_array_equal(out, ref)
    with pytest.raises(RuntimeError, match="outside"):
        runner.run(x.numpy())


def test_torch_fp16_runner_keeps_the_source_model_fp32(tiny):
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 16, 16)).astype(np.float32)
    with open_runner("torch", ModelSource.from_module(tiny)) as r:
        ref = r.run(x)
    with open_runner("torch-fp16", ModelSource.from_module(tiny)) as r:
        out = r.run(x)
    assert tiny.to_feat.weight.dtype == torch.float32
    assert out.dtype == np.float32 and np.abs(out - ref).max() < 0.05


def _tiny_onnx(path, spec_json: str | None, scale: int = 2):
    """An x2 nearest-upsampling model with srx's I/O contract, built by hand."""
    import onnx
    from onnx import TensorProto, helper

    lr = helper.make_tensor_value_info("lr", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    sr = helper.make_tensor_value_info("sr", TensorProto.FLOAT, ["batch", 3, "out_h", "out_w"])
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, float(scale), float(scale)])
    node = helper.make_node("Resize", ["lr", "", "scales"], ["sr"], mode="nearest")
    graph = helper.make_graph([node], "tiny", [lr], [sr], initializer=[scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if spec_json is not None:
        helper.set_model_props(model, {"srx.spec": spec_json})
    onnx.save(model, str(path))
    return path


def test_onnxruntime_runner_on_a_hand_built_model(tmp_path, tiny):
    pytest.importorskip("onnxruntime")
    path = _tiny_onnx(tmp_path / "m.onnx", tiny.spec.to_json())
    src = ModelSource.from_file(path)
    assert src.kind == "onnx" and src.spec == read_srx_onnx(path).spec
    x = np.random.default_rng(1).uniform(0, 1, (1, 3, 17, 23)).astype(np.float32)
    expected = x.repeat(2, axis=2).repeat(2, axis=3)
    for opts in ({}, {"specialize": False}, {"threads": 1, "opt_level": "basic"}):
        with open_runner("onnxruntime", src, "cpu", **opts) as r:
            np.testing.assert_array_equal(r.run(x), expected)
            np.testing.assert_array_equal(r.run(x[:, :, :9, :11]), expected[:, :, :18, :22])
            assert r.describe()["providers"] == ["CPUExecutionProvider"]
    assert check_backend("torch", "cpu", src).reason.endswith("pass --weights")


def test_onnx_without_spec_or_damaged_is_refused(tmp_path):
    with pytest.raises(BadInput, match=r"not an srx image model \(no srx\.spec metadata"):
        ModelSource.from_file(_tiny_onnx(tmp_path / "plain.onnx", None))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(BadInput, match="not a readable ONNX"):
        ModelSource.from_file(bad)
    with pytest.raises(BadInput, match="unknown model file type"):
        (tmp_path / "x.txt").write_text("x")
        ModelSource.from_file(tmp_path / "x.txt")


def test_torch_compile_defaults_per_device(tiny, monkeypatch):
    """channels_last + freezing on the CPU (measured faster there), PyTorch's defaults on CUDA;
    without a C++ compiler, inductor cannot build CPU kernels: skipped with the reason."""
    from srx.runtime.registry import runner_class

    src = ModelSource.from_module(tiny)
    cls = runner_class("torch-compile")
    cpu, cuda = cls(src, "cpu").describe(), cls(src, "cuda").describe()
    assert cpu["memory_format"] == "channels_last" and cpu["freezing"]
    assert cuda["memory_format"].startswith("contiguous") and not cuda["freezing"]
    assert cls(src, "cpu", channels_last=False).describe()["memory_format"] != "channels_last"
    monkeypatch.setenv("CXX", "")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "C++ compiler" in check_backend("torch-compile", "cpu", src).reason


def test_onnxruntime_runs_a_checkpoint_through_the_exporter(tiny):
    """A PyTorch source is exported on demand for onnxruntime (this import path was broken:
    onnx_from_model lives in srx.export.model, and onnxruntime was skipped for every checkpoint)."""
    pytest.importorskip("onnxruntime")
    src = ModelSource.from_module(tiny)
    assert check_backend("onnxruntime", "cpu", src).ok
    x = np.random.default_rng(0).random((1, 3, 16, 24), dtype=np.float32)
    with src, open_runner("onnxruntime", src, "cpu") as r:
        got = r.run(x)
    with torch.inference_mode():
        ref = tiny(torch.from_numpy(x)).numpy()
    assert np.abs(got - ref).max() < 1e-4


@pytest.mark.parametrize("name", ["torch-fused", "torch-fp16-graph"])
def test_graph_backends_replay_one_cuda_graph_per_input_shape(tiny, monkeypatch, name):
    """On CUDA, torch-fused and torch-fp16-graph capture a graph on the first call for a shape
    and replay it for later calls of that shape (srx.runtime.cuda_graph.GraphCache). The capture
    needs a GPU, so GraphReplay is stood in for by a recorder here."""
    import srx.runtime.cuda_graph as cg
    from srx.runtime.registry import runner_class

    captured = []

    class Recorder:
        def __init__(self, fn, example, warmup=3):
            captured.append(tuple(example.shape))
            self.fn = fn

        def __call__(self, x):
            return self.fn(x)

    monkeypatch.setattr(cg, "GraphReplay", Recorder)
    cls = runner_class(name)
    src = ModelSource.from_module(tiny)
    runner = cls(src, "cuda")
    runner.model, runner._graphs = tiny, cg.GraphCache(runner._forward)
    a, b = torch.rand(1, 3, 16, 24), torch.rand(1, 3, 24, 16)
    for x in (a, a, b, a, b):
        with torch.inference_mode():
            assert torch.equal(runner.execute(x), tiny(x))
    assert captured == [(1, 3, 16, 24), (1, 3, 24, 16)]
    assert runner.describe()["cuda_graph"] and runner.mode().endswith("+ CUDA graph")

    direct = cls(src, "cuda", cuda_graph=False)
    direct.model, direct._graphs = tiny, None
    direct.execute(a)
    assert len(captured) == 2 and not direct.describe()["cuda_graph"] and "graph" not in direct.mode()
    assert "cuda_graph" not in cls(src, "cpu").describe()


def test_graph_pool_memory_counts_the_pools_free_blocks():
    """A CUDA graph's private pool keeps its blocks for the graph's life: the memory column of a
    graph row is at least what is live outside the pool plus everything the pool reserves."""
    from srx.runtime.cuda_graph import PoolBytes, graph_peak_bytes, private_pool_bytes

    mb = 2**20
    segments = [
        {"device": 0, "segment_pool_id": (0, 0), "total_size": 20 * mb, "allocated_size": 12 * mb},
        {"device": 0, "segment_pool_id": (1, 0), "total_size": 40 * mb, "allocated_size": 4 * mb},
        {"device": 0, "segment_pool_id": [1, 0], "total_size": 2 * mb, "allocated_size": 0},
        {"device": 1, "segment_pool_id": (3, 0), "total_size": 8 * mb, "allocated_size": 8 * mb},
    ]
    pools = private_pool_bytes(segments, device=0)
    assert pools == PoolBytes(42 * mb, 4 * mb)
    # 10 MB of weights and inputs before; a 30 MB peak of live tensors during capture; 16 MB
    # live now (12 outside the pool + the 4 MB output inside it): the pool's 38 MB of free
    # blocks are held too, so the row needs 12 - 10 + 42 = 44 MB above the start, not 20.
    assert graph_peak_bytes(30 * mb, 16 * mb, 10 * mb, PoolBytes(0, 0), pools) == 44 * mb
    # Without a graph (no private pool grew) it is the allocator's peak, as before.
    assert graph_peak_bytes(30 * mb, 16 * mb, 10 * mb, pools, pools) == 20 * mb


def test_torch_fused_is_fp16_unless_asked_for_fp32(tiny, monkeypatch):
    import srx.kernels
    from srx.runtime.registry import get_backend, runner_class

    monkeypatch.setattr(srx.kernels, "fuse", lambda model: model)  # the Triton kernels need a GPU
    cls = runner_class("torch-fused")
    src = ModelSource.from_module(tiny)
    assert get_backend("torch-fused").precision == "fp16"
    with cls(src, "cpu") as r:
        assert r.precision == "fp16" and next(r.model.parameters()).dtype == torch.float16
    with cls(src, "cpu", fp32=True) as r:
        assert r.precision == "fp32" and next(r.model.parameters()).dtype == torch.float32
