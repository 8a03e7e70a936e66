"""srx bench --profile: where the time goes, by operation kind.

The acceptance check runs the real command at 320x180 on the CPU for torch and
onnxruntime and holds each breakdown to the time the same runs took on the runner's own
timer (within 10%). The GPU path (kernels on the device timeline, attributed through the
profiler's correlation ids) is checked on stand-in profiler events.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
from conftest import run_srx

from srx.bench.breakdown import OP_KINDS, breakdown, categorize
from srx.models import build_model
from srx.runtime import ModelSource, open_runner
from srx.runtime.ort_profile import trace_from_events
from srx.runtime.torch_profile import RUN, SCOPE, device_trace
from srx.runtime.trace import OpTime, Trace


@pytest.mark.parametrize(
    ("name", "scope", "kind"),
    [
        ("aten::conv2d", "", "convolution"),
        ("Conv", "feats.0.ccm.ccm.0", "convolution"),
        ("sm90_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nchw", "", "convolution"),
        ("aten::_to_copy", "", "copies_layout"),  # 'conv' must not match 'convert' / 'copy' stays a copy
        ("void at::native::unrolled_elementwise_kernel<convert>", "", "elementwise"),
        ("aten::mean", "feats.0.norm1", "normalization"),
        ("ReduceMean", "feats.3.norm2", "normalization"),
        ("aten::mean", "", "elementwise"),
        ("aten::sub_", "", "elementwise"),
        ("nchwToNhwcKernel", "", "copies_layout"),  # cuDNN's layout change, known by name in a graph replay
        ("LayerNormalization", "", "normalization"),
        ("aten::normal_", "", "other"),
        ("triton_per_fused_add_div_mean_mul_pow_sqrt_sub_0", "", "normalization"),
        ("triton_poi_fused_add_gelu_mul_3", "", "elementwise"),
        ("_some_fused_kernel", "", "fused"),
        ("aten::adaptive_max_pool2d", "", "pooling_resize"),
        ("aten::upsample_nearest2d", "", "pooling_resize"),
        ("Resize", "feats.0.safm.up1", "pooling_resize"),
        ("Gather", "feats.0.safm.pool3", "pooling_resize"),  # exact adaptive pooling, written as index arithmetic
        ("Gather", "feats.0.safm.up3", "pooling_resize"),
        ("Gather", "feats.0.safm", "copies_layout"),
        ("aten::cat", "", "copies_layout"),
        ("ReorderInput", "", "copies_layout"),
        ("DepthToSpace", "to_img.1", "copies_layout"),
        ("Memcpy DtoD (Device -> Device)", "", "copies_layout"),
        ("Gelu", "feats.0.ccm.ccm.1", "elementwise"),
        ("## Call CompiledFxGraph abc ## (own time)", "", "fused"),
        ("TorchDynamo Cache Lookup", "", "other"),
    ],
)
def test_operation_kinds(name, scope, kind):
    assert categorize(OpTime(name, 1.0, 1, scope)) == kind


def _ev(i, name, start, end, device="CPU", parent=None, link=0):
    e = types.SimpleNamespace(
        id=i,
        name=name,
        device_type=f"DeviceType.{device}",
        time_range=types.SimpleNamespace(start=start, end=end),
        cpu_parent=parent,
        cpu_children=[],
        linked_correlation_id=link,
        is_async=False,
    )
    if parent is not None:
        parent.cpu_children.append(e)
    return e


def test_device_trace_attributes_kernels_to_the_operator_that_launched_them():
    """Stand-in torch.profiler events of one eager run on a GPU: a LayerNorm-scoped mean, a
    convolution with two kernels, a Triton kernel launched outside any operator, a copy."""
    run = _ev(1, RUN, 0, 900)
    norm = _ev(2, SCOPE + "feats.0.norm1", 10, 200, parent=run)
    mean = _ev(3, "aten::mean", 20, 100, parent=norm)
    conv = _ev(4, "aten::conv2d", 210, 400, parent=run)
    inner = _ev(5, "aten::cudnn_convolution", 220, 390, parent=conv)
    copy = _ev(6, "aten::copy_", 410, 450, parent=run)
    launch = _ev(7, "cudaLaunchKernel", 30, 40, parent=mean, link=3)  # a runtime call, not an operator
    kernels = [
        _ev(10, "reduce_kernel<MeanOps>", 100, 150, "CUDA", link=3),
        _ev(11, "sm90_xmma_fprop_implicit_gemm", 300, 500, "CUDA", link=5),
        _ev(12, "nchwToNhwcKernel", 500, 540, "CUDA", link=5),
        _ev(13, "_mystery_fused_kernel", 600, 700, "CUDA", link=1),
        _ev(14, "Memcpy DtoD (Device -> Device)", 700, 720, "CUDA", link=6),
    ]
    events = [run, norm, mean, conv, inner, copy, launch, *kernels]
    trace = device_trace(events, runs=1, measured_ms=0.64)
    assert trace.timeline == "device" and trace.span_ms == pytest.approx(0.62)
    by = {(o.name, o.kind): o for o in trace.ops}
    assert by[("aten::mean", "op")].scope == "feats.0.norm1"
    assert by[("aten::conv2d", "op")].ms == pytest.approx(0.24) and by[("aten::conv2d", "op")].calls == 2
    assert ("_mystery_fused_kernel", "kernel") in by  # no operator: known by the kernel's name
    b = breakdown(trace)
    kinds = {k: v["ms"] for k, v in b["categories"].items()}
    assert kinds["normalization"] == 0.05 and kinds["convolution"] == 0.24 and kinds["fused"] == 0.1
    assert kinds["copies_layout"] == 0.02
    assert kinds["gaps"] == pytest.approx(0.62 - 0.41)  # the GPU idle between kernels: launch-bound time
    assert b["total_ms"] == pytest.approx(0.62) and b["measured_ms"] == 0.64


def test_device_trace_without_gpu_activity_says_so():
    b = breakdown(device_trace([_ev(1, RUN, 0, 10)], runs=1, measured_ms=1.0))
    assert b["status"] == "unavailable" and "CUPTI" in b["reason"]


def test_double_counting_cannot_hide_in_the_gaps():
    """Operators that overlap (counted twice) push the sum above the measured time instead of
    shrinking the gaps below zero: that is what the 10% check below catches."""
    b = breakdown(Trace("t", "host", 1, 10.0, 10.0, [OpTime("aten::conv2d", 8.0), OpTime("aten::add", 8.0)]))
    assert b["categories"]["gaps"]["ms"] == 0 and b["total_ms"] == 16.0


def test_onnxruntime_profile_events():
    def node(name, op, ts, dur):
        return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    events = [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},  # the warm-up run: dropped
        node("to_feat/Conv", "Conv", 10, 50),
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 100},
        node("feats.0.norm1/ReduceMean", "ReduceMean", 210, 30),
        node("feats.0.safm.pool1/MaxPool", "MaxPool", 240, 20),
        node("ReorderOutput_token_3", "ReorderOutput", 260, 10),
    ]
    trace = trace_from_events(events, runs=1, measured_ms=0.11)
    b = breakdown(trace)
    ms = {k: v["ms"] for k, v in b["categories"].items()}
    assert ms["normalization"] == 0.03 and ms["pooling_resize"] == 0.02 and ms["copies_layout"] == 0.01
    assert ms["convolution"] == 0 and ms["gaps"] == pytest.approx(0.04) and b["total_ms"] == pytest.approx(0.1)


def test_torch_profile_on_the_cpu_marks_layernorm(tmp_path):
    src = ModelSource.from_module(build_model("safmn", 2, dim=8, n_blocks=1, seed=2))
    x = np.random.default_rng(0).random((1, 3, 24, 32), dtype=np.float32)
    with open_runner("torch", src, "cpu") as r:
        trace = r.profile([r.stage(x)], 2)
        assert not any(h for m in r.model.modules() for h in m._forward_hooks.values())  # markers removed
    b = breakdown(trace)
    assert b["status"] == "ok" and b["timeline"] == "host" and b["runs"] == 2
    # Every operator of the trace, not b["top"]: which ones make the slowest eight depends on the
    # machine's load (on a busy CPU sqrt and the markers' own time crowded the statistics out).
    norm_ops = {op.name for op in trace.ops if categorize(op) == "normalization"}
    assert norm_ops & {"aten::mean", "aten::sub", "aten::pow", "aten::div"}
    for kind in ("convolution", "normalization", "pooling_resize", "elementwise"):
        assert b["categories"][kind]["ms"] > 0, kind
    assert sum(c["pct"] for c in b["categories"].values()) == pytest.approx(100, abs=0.1)


def test_bench_profile_at_320x180_on_the_cpu(tmp_path):
    """The acceptance check (issue 13): `srx bench --input 320x180 --profile` prints where the
    time goes for torch and onnxruntime, and each breakdown adds up to the time the same runs
    took on the runner's own timer, within 10%."""
    out = tmp_path / "p.json"
    args = ["bench", "--input", "320x180", "--profile", "--backends", "torch,onnxruntime", "--runs", "1"]
    proc = run_srx(*args, "--warmup", "0", "--device", "cpu", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "where the time goes" in proc.stdout and "launch gaps / CPU overhead" in proc.stdout
    rows = {r["backend"]: r for r in json.loads(out.read_text())["results"] if r["status"] == "ok"}
    assert set(rows) == {"torch", "onnxruntime"}
    for name, row in rows.items():
        p = row["profile"]
        assert p["status"] == "ok" and set(p["categories"]) == {k for k, _ in OP_KINDS}, name
        total = sum(c["ms"] for c in p["categories"].values())
        assert total == pytest.approx(p["measured_ms"], rel=0.10), (name, total, p["measured_ms"])
        for kind in ("convolution", "normalization", "pooling_resize", "elementwise"):
            assert p["categories"][kind]["ms"] > 0, (name, kind)
        assert f"{name}:" in proc.stdout


def test_plot_adds_a_stacked_bar_of_the_profile(tmp_path):
    pytest.importorskip("matplotlib")
    from srx.bench.plot import plot_result

    def row(name, conv):
        trace = Trace("t", "host", 1, 10.0, 10.0, [OpTime("aten::conv2d", conv), OpTime("aten::add", 1.0)])
        lat = {"median": 10.0, "p90": 11.0}
        return {"backend": name, "status": "ok", "latency_ms": lat, "peak_memory_mb": 1.0, "profile": breakdown(trace)}

    result = {
        "results": [row("torch", 6.0), row("onnxruntime", 4.0), {"backend": "x", "status": "skipped"}],
        "device": {"name": "cpu"},
        "model": {"label": "m"},
        "input": "8x8",
        "scale": 2,
    }
    out = plot_result(result, tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
