"""OpenVINO backends (openvino, openvino-bf16, openvino-int8) against PyTorch on srx's export.

Tolerances: FP32 within 2e-5 of PyTorch FP32 (onnxruntime's bound on the same graphs is
1e-5; OpenVINO picks other convolution kernels); BF16 (8-bit mantissas) at least 35 dB
PSNR against FP32 on [0, 1] images with random weights; INT8 within onnxruntime's result
on the same Q/DQ file (both run the file's own quantization: 0.02 on [0, 1]).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from srx.errors import BadInput
from srx.export.metadata import srx_onnx_from_model
from srx.models import build_model
from srx.runtime import ModelSource, check_backend, open_runner
from tests.onnx_models import natural_batch, onnx_bytes, write_images

pytest.importorskip("openvino", reason="the openvino package is not installed (pip install 'srx[openvino]')")

from srx.runtime.openvino_runner import cpu_capabilities

HAS_BF16 = "BF16" in cpu_capabilities()
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason="this CPU has no native BF16 (AVX512_BF16 / AMX)")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


@pytest.fixture(scope="module")
def model():
    return build_model("safmn", 4, 8, 2, seed=3).eval()


def _torch(model, x):
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("backend", ["openvino", pytest.param("openvino-bf16", marks=needs_bf16)])
def test_backend_matches_pytorch_on_odd_sizes_batches_and_shape_changes(model, backend):
    source = ModelSource.from_module(model)
    # 37x29 and 23x41 are not multiples of the pooling grid (8): uneven adaptive windows.
    inputs = [natural_batch(29, 37, seed=1), natural_batch(29, 37, batch=3, seed=2), natural_batch(41, 23, seed=3)]
    with source, open_runner(backend, source, "cpu") as r:
        for x in [*inputs, inputs[0]]:  # back to the first shape: a cached compiled model
            got, ref = r.run(x), _torch(model, x)
            assert got.shape == ref.shape
            if backend == "openvino":
                assert np.abs(got - ref).max() < 2e-5
            else:
                assert _psnr(got, ref) > 35.0
        assert r.precision == ("fp32" if backend == "openvino" else "bf16")
        # At most two compiled models are kept (as onnxruntime keeps two sessions).
        assert len(r.describe()["compiled"]) == 2


def test_throughput_hint_runs_each_image_as_a_request_with_the_same_result(model):
    source = ModelSource.from_module(model)
    x = natural_batch(29, 37, batch=3, seed=4)
    with source:
        with open_runner("openvino", source, "cpu", hint="latency") as r:
            one_request = r.run(x)
            assert r.describe()["compiled"] == ["latency 3x3x29x37"]
        with open_runner("openvino", source, "cpu", hint="auto", requests=2) as r:
            in_flight = r.run(x)
            assert r.describe()["compiled"] == ["throughput 1x3x29x37"]  # a batch: throughput by default
            r.run(x[:1])
            assert r.describe()["compiled"][-1] == "latency 1x3x29x37"  # one image: latency
    assert np.abs(in_flight - one_request).max() < 2e-5


def test_bad_hint_is_refused(model):
    source = ModelSource.from_module(model)
    with source, pytest.raises(BadInput, match="unknown OpenVINO performance hint 'fast'"):
        open_runner("openvino", source, "cpu", hint="fast").activate()


def _int8_file(tmp_path, weight_bits=8):
    """A Q/DQ ONNX made by srx's quantizer (small calibration: a test, not a measurement)."""
    from srx.precision import int8 as Q

    src = srx_onnx_from_model(onnx.load_from_string(onnx_bytes("safmn")))
    settings = Q.QuantSettings(
        calibration_images=6, held_out_images=2, crop=32, sensitivity_crops=3, sensitivity_crop=24,
        held_out_max_side=40, target_drop_db=0.0, weight_bits=weight_bits,
    )  # fmt: skip
    out, _ = Q.int8_from_onnx(src, write_images(tmp_path / "calib", 8, (120, 100)), settings)
    path = tmp_path / f"m{weight_bits}.int8.onnx"
    onnx.save(out.model, str(path))
    return path


def test_int8_runs_the_quantized_file_as_onnxruntime_does(tmp_path):
    path = _int8_file(tmp_path)
    x = natural_batch(27, 31, batch=2, seed=5)
    with ModelSource.from_file(path) as source:
        assert source.precision == "int8"
        with open_runner("onnxruntime", source, "cpu") as r:
            ref = r.run(x)
        for backend in ("openvino-int8", "openvino"):
            with open_runner(backend, source, "cpu", hint="throughput") as r:
                got = r.run(x)
                assert r.precision == "int8"
                # INT8 runs one request at a time whatever the hint (OpenVINO's streams erred on it).
                assert r.describe()["compiled"] == ["latency 2x3x27x31"]
                # Every aggregation input (fed by a Concat) runs in floating point (openvino_graph).
                assert len(r.describe()["graph_rewrite"]["float_input_convolutions"]) == 1
            assert got.shape == ref.shape and np.abs(got - ref).max() < 0.02


def test_int8_matches_onnxruntime_where_the_size_rewrites_apply(tmp_path):
    # 48x40: every pooling window even (for_cpu rewrites all of them); and the constant
    # folding before compiling, without which OpenVINO ran Q/DQ files wrongly on an AVX2 CPU.
    path = _int8_file(tmp_path)
    x = natural_batch(48, 40, seed=8)
    with ModelSource.from_file(path) as source:
        with open_runner("onnxruntime", source, "cpu") as r:
            ref = r.run(x)
        with open_runner("openvino-int8", source, "cpu") as r:
            got = r.run(x)
            assert r.describe()["graph_rewrite"]["per_size"]["1x3x48x40"]["strided_max_pools"] == 6
    assert np.abs(got - ref).max() < 0.02


def _no_vnni(monkeypatch, flags=("avx2", "fma")):
    import srx.runtime.device as device

    info = {**device.cpu_info(), "flags": list(flags)}
    monkeypatch.setattr(device, "cpu_info", lambda: info)


@pytest.mark.parametrize(("h", "w"), [(27, 31), (48, 40)])
def test_7_bit_weights_run_in_openvinos_int8_kernels_as_onnxruntime_does(tmp_path, monkeypatch, h, w):
    # Whatever this CPU has: weights within +-64 are exact in INT8 without VNNI too. 48x40
    # is where for_cpu rewrites every pool, after the constant folding that must leave the
    # weights' dequantization alone (else every convolution compiles in f32).
    _no_vnni(monkeypatch)
    path = _int8_file(tmp_path, weight_bits=7)
    x = natural_batch(h, w, seed=8)
    with ModelSource.from_file(path) as source:
        with open_runner("onnxruntime", source, "cpu") as r:
            ref = r.run(x)
        with open_runner("openvino-int8", source, "cpu") as r:
            got = r.run(x)
            d = r.describe()
    assert d["int8_convolutions"] == "int8" and d["graph_rewrite"]["int8_weight_max"] <= 63
    # The aggregation (fed by a Concat) runs in floating point; the others in u8.
    assert d["convolution_precisions"]["u8"] >= 4, d["convolution_precisions"]
    assert np.abs(got - ref).max() < 0.02


def test_8_bit_weights_without_vnni_run_emulated_in_floating_point(tmp_path, monkeypatch):
    # OpenVINO's INT8 kernels would overflow (the sums of pairs in 16 bits): the same values
    # through FP32 kernels instead, whether or not the size rewrites run.
    _no_vnni(monkeypatch)
    path = _int8_file(tmp_path)
    x = natural_batch(29, 37, seed=9)
    with ModelSource.from_file(path) as source:
        with open_runner("onnxruntime", source, "cpu") as r:
            ref = r.run(x)
        for rewrite in (True, False):
            with open_runner("openvino-int8", source, "cpu", rewrite=rewrite) as r:
                got = r.run(x)
                d = r.describe()
                assert "emulated" in r.mode() and "--weight-bits 7" in d["int8_convolutions"]
                assert list(d["convolution_precisions"]) == ["f32"]
            assert np.abs(got - ref).max() < 0.02


def test_upscale_warns_before_an_8_bit_file_runs_emulated(tmp_path, monkeypatch):
    from srx.upscale import model_warnings

    def emulated(source, backend):  # the test files are untrained: that warning comes too
        found = model_warnings(source, None, None, default=False, backend=backend)
        return [line for line in found if "floating-point kernels" in line]

    _no_vnni(monkeypatch)
    eight, seven = _int8_file(tmp_path), _int8_file(tmp_path, weight_bits=7)
    with ModelSource.from_file(eight) as source:
        (line,) = emulated(source, "openvino-int8")
        assert "no VNNI" in line and "--weight-bits 7" in line and "\n" not in line
        assert emulated(source, "openvino")  # auto's pick for a file on the CPU
        assert not emulated(source, "onnxruntime")
        _no_vnni(monkeypatch, ("avx2", "avx512_vnni"))
        assert not emulated(source, "openvino-int8")
    _no_vnni(monkeypatch)
    with ModelSource.from_file(seven) as source:
        assert not emulated(source, "openvino-int8")


def test_int8_kernels_are_exact_with_vnni_or_7_bit_weights(monkeypatch):
    from srx.runtime.openvino_runner import int8_kernels_exact

    _no_vnni(monkeypatch)
    assert int8_kernels_exact(64) and not int8_kernels_exact(65) and not int8_kernels_exact(127)
    for flag in ("avx512_vnni", "avx_vnni", "amx_int8"):
        _no_vnni(monkeypatch, ("avx2", flag))
        assert int8_kernels_exact(127)


def test_int8_needs_a_quantized_file_with_7_bit_weights_without_vnni(model, monkeypatch):
    source = ModelSource.from_module(model)
    _no_vnni(monkeypatch, ("avx2", "avx512_vnni"))
    avail = check_backend("openvino-int8", "cpu", source)
    assert not avail.ok and "srx quantize" in avail.reason and "--weight-bits" not in avail.reason
    _no_vnni(monkeypatch)
    avail = check_backend("openvino-int8", "cpu", source)
    assert not avail.ok and "--weight-bits 7 (this CPU has no VNNI)" in avail.reason


def test_graph_rewrite_drops_only_the_qdq_in_front_of_concat_fed_convolutions(tmp_path):
    from srx.runtime.openvino_graph import for_openvino

    model = onnx.load(str(_int8_file(tmp_path)))
    rewritten, report = for_openvino(model)
    ops = [n.op_type for n in model.graph.node]
    new_ops = [n.op_type for n in rewritten.graph.node]
    assert report.float_inputs == ("feats.0.safm.aggr/Conv",)
    assert new_ops.count("QuantizeLinear") == ops.count("QuantizeLinear") - 1
    assert new_ops.count("DequantizeLinear") == ops.count("DequantizeLinear") - 1
    aggr = next(n for n in rewritten.graph.node if n.name == "feats.0.safm.aggr/Conv")
    producer = {o: n for n in rewritten.graph.node for o in n.output}
    assert producer[aggr.input[0]].op_type == "Concat"
    again, second = for_openvino(rewritten)  # nothing left to do
    assert second.float_inputs == () and len(again.graph.node) == len(rewritten.graph.node)


def test_bf16_is_refused_with_its_reason_on_a_cpu_without_it(monkeypatch, model):
    import srx.runtime.openvino_runner as ovr

    monkeypatch.setattr(ovr, "cpu_capabilities", lambda: ("FP32", "INT8"))
    avail = check_backend("openvino-bf16", "cpu", ModelSource.from_module(model))
    assert not avail.ok and "no native bfloat16" in avail.reason


def test_missing_package_is_one_line_with_the_install_command(tmp_path):
    # A fresh interpreter where `import openvino` finds nothing.
    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n.split('.')[0] == 'openvino' else real(n, *a)\n"
        "from srx.cli import main\n"
        "main(['upscale', sys.argv[1], '-o', sys.argv[2], '--backend', 'openvino', '--weights', 'default'])\n"
    )
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "a.png"), str(tmp_path / "out.png")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "openvino" in lines[0] and "pip install 'srx[openvino]'" in lines[0]
    assert not (tmp_path / "out.png").exists()


def test_corrupt_onnx_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.onnx"
    good = onnx.load_from_string(onnx_bytes("safmn"))
    data = good.SerializeToString()
    bad.write_bytes(data[: len(data) // 2])  # truncated
    with (
        pytest.raises(BadInput, match=r"bad\.onnx"),
        ModelSource.from_file(bad) as source,
        open_runner("openvino", source, "cpu") as r,
    ):
        r.run(natural_batch(16, 16))
    done = subprocess.run(
        [sys.executable, "-m", "srx", "bench", "--model", str(bad), "--backends", "openvino", "--runs", "1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_bench_lists_the_openvino_rows_and_eval_takes_the_backend(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "srx", "bench", "--input", "24x16", "--weights", "seeded", "--runs", "1",
         "--warmup", "0", "--backends", "torch,openvino,openvino-bf16,openvino-int8", "--json", "-"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = {r["backend"]: r for r in json.loads(out.stdout)["results"]}
    assert rows["openvino"]["status"] == "ok" and rows["openvino"]["max_abs_diff_vs_fp32"] < 2e-5
    assert rows["openvino-int8"]["status"] == "skipped" and "srx quantize" in rows["openvino-int8"]["reason"]
    assert rows["openvino-bf16"]["status"] == ("ok" if HAS_BF16 else "skipped")


def test_eval_backend_scores_a_shipped_network_as_pytorch_does(tmp_path):
    from srx.evaluate import evaluate

    data = write_images(tmp_path / "hr", 2, (64, 48))
    ref = evaluate(data, "default", 4)
    got = evaluate(data, "default", 4, backend="openvino")
    assert got.extra["backend"] == "openvino" and got.extra["precision"] == "fp32"
    # uint8 outputs: FP32 in another runtime may round a pixel differently, nothing more.
    assert abs(got.psnr_y - ref.psnr_y) < 0.01
    with pytest.raises(BadInput, match="--backend applies to networks"):
        evaluate(data, "bicubic", 4, backend="openvino")


def test_profile_reads_openvinos_node_counters(model):
    source = ModelSource.from_module(model)
    x = natural_batch(29, 37, seed=6)
    with source, open_runner("openvino", source, "cpu") as r:
        trace = r.profile([x], 2)
        assert trace.runs == 2 and trace.measured_ms > 0 and trace.span_ms > 0
        assert trace.span_ms == pytest.approx(sum(o.ms for o in trace.ops))
        kinds = {o.name.split(" ")[0] for o in trace.ops}
        assert {"Convolution", "GroupConvolution", "MaxPool"} <= kinds
        assert any(o.scope.startswith("feats.0.safm") for o in trace.ops)  # ONNX node names kept as scopes
    with source, open_runner("openvino", source, "cpu", hint="throughput") as r:
        assert r.profile([x], 1) is None  # overlapping requests: no per-run node times


def test_threads_are_handed_to_openvino(model):
    source = ModelSource.from_module(model)
    with source, open_runner("openvino", source, "cpu", threads=1) as r:
        r.run(natural_batch(16, 16))
        compiled, _ = next(iter(r._compiled.values()))
        assert r.describe()["threads"] == 1 and compiled.get_property("INFERENCE_NUM_THREADS") == 1


def test_auto_picks_openvino_for_few_shapes_and_onnxruntime_for_many(model, tmp_path):
    from srx.runtime.registry import auto_backend

    source = ModelSource.from_module(model)
    assert auto_backend(source, "cpu") == "openvino"  # upscale: images, tiles, video frames
    assert auto_backend(source, "cpu", varied_shapes=True) == "onnxruntime"  # serve, eval: one dynamic session
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_bytes("safmn"))
    with ModelSource.from_file(path) as f:
        assert auto_backend(f, "cpu") == "openvino"
        assert auto_backend(f, "cpu", varied_shapes=True) == "onnxruntime"


@pytest.mark.parametrize(
    ("h", "w", "pools", "interpolates"),
    [
        # 48x40: every window of 2, 4 and 8 even on both axes: 3 two-axis pools and upsamplings per block
        (48, 40, 2 * 3 * 2, 2 * 3 * 2),
        # 36x64: rows uneven at 8 (columns pooled first, strided); 4 -> 36 rows is a repeat by 9
        (36, 64, 2 * 5, 2 * 6),
        # 64x36: columns uneven at 8, rows strided alone
        (64, 36, 2 * 5, 2 * 6),
        (29, 37, 0, 0),  # uneven everywhere: the graph as exported
    ],
)
def test_size_rewrites_pick_the_same_elements_as_the_exported_graph(model, h, w, pools, interpolates):
    """for_cpu against onnxruntime on the un-rewritten ONNX: pooling and nearest picks move
    around but no arithmetic changes, so within onnxruntime's own FP32 bound (1e-5)."""
    source = ModelSource.from_module(model)
    x = natural_batch(h, w, seed=7)
    with source:
        with open_runner("onnxruntime", source, "cpu") as r:
            ref = r.run(x)
        with open_runner("openvino", source, "cpu") as r:
            got = r.run(x)
            done = r.describe()["graph_rewrite"]["per_size"][f"1x3x{h}x{w}"]
        with open_runner("openvino", source, "cpu", rewrite=False) as r:
            as_read = r.run(x)
            assert "graph_rewrite" not in r.describe()
    assert done == {"strided_max_pools": pools, "nearest_interpolates": interpolates}
    assert np.abs(got - ref).max() <= 1e-5 and np.abs(as_read - ref).max() <= 1e-5
