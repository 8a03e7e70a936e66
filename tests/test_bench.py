"""srx bench: complexity counts (as fvcore / the paper), statistics, inputs, the CLI's JSON, compare and plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, run_srx

from srx.bench.complexity import count_complexity
from srx.bench.engine import Accuracy, BenchConfig, latency_stats, run_bench
from srx.bench.inputs import synthetic_image, synthetic_inputs
from srx.bench.report import caveats, compare, format_compare
from srx.errors import BadInput
from srx.models import build_model, default_model
from srx.runtime import ModelSource, backend_names, check_backend

# Reference values from fvcore 0.1.5 FlopCountAnalysis / ActivationCountAnalysis on the
# official layer sequence at 320x180 (see srx/bench/complexity.py for the rules).
FVCORE_320x180 = {
    ("safmn", 4): (239_520, 13_554_915_840, 76_700_160),
    ("safmn", 2): (227_820, 12_883_069_440, 74_626_560),
    ("safmn-ntire23", 4): (237_000, 13_556_786_400, 75_679_200),
    ("safmnpp", 4): (211_572, 12_177_440_640, 60_888_960),
    ("safmnpp-light", 4): (66_176, 3_802_775_040, 21_224_960),
}


def test_paper_complexity_matches_the_paper():
    c = count_complexity(default_model(4), 180, 320)
    assert c.params == 239_520  # 239.52 K
    assert f"{c.macs / 1e9:.3f}" == "13.555"  # fvcore prints 13.555 G; the paper rounds that to 13.56 G
    assert round(c.activations / 1e6, 2) == 76.70


@pytest.mark.parametrize(("arch", "scale"), sorted(FVCORE_320x180))
def test_complexity_matches_fvcore(arch, scale):
    c = count_complexity(build_model(arch, scale), 180, 320)
    assert (c.params, c.macs, c.activations) == FVCORE_320x180[(arch, scale)]


def test_complexity_at_an_odd_size():
    assert count_complexity(build_model("safmn", 3), 37, 53).macs == 448_114_464  # fvcore, (1, 3, 37, 53)


def test_latency_stats():
    s = latency_stats([4.0, 1.0, 3.0, 2.0, 10.0])
    assert (s["median"], s["mean"], s["min"], s["max"]) == (3.0, 4.0, 1.0, 10.0)
    assert s["p90"] == pytest.approx(7.6)


def test_accuracy_metrics():
    ref = np.full((1, 3, 4, 4), 0.5, np.float32)
    acc = Accuracy()
    acc.add(ref + 0.01, ref)
    r = acc.result()
    assert r["max_abs_diff_vs_fp32"] == pytest.approx(0.01, rel=1e-3)
    assert r["psnr_vs_fp32"] == pytest.approx(40.0, abs=0.01)
    same = Accuracy()
    same.add(ref.copy(), ref)
    assert same.result()["identical_to_fp32"] and same.result()["psnr_vs_fp32"] is None
    bad = Accuracy()
    bad.add(np.where(ref > 0, np.inf, 0).astype(np.float32), ref)
    assert bad.result()["nonfinite_outputs"] == ref.size and bad.result()["max_abs_diff_vs_fp32"] is None


def test_synthetic_inputs_are_seeded_smooth_images():
    a, b = synthetic_inputs(45, 80, 2, seed=3), synthetic_inputs(45, 80, 2, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], a[1])
    img = synthetic_image(180, 320, 0)
    assert img.shape == (3, 180, 320) and img.dtype == np.float32 and img.min() >= 0 and img.max() <= 1
    # Natural images are smooth: neighbouring pixels differ far less than U(0,1) noise (mean |d| = 1/3).
    assert np.abs(np.diff(img, axis=2)).mean() < 0.05


def test_run_bench_library_reuses_the_torch_output_as_reference():
    src = ModelSource.from_module(build_model("safmn", 2, dim=8, n_blocks=1))
    r = run_bench(src, BenchConfig(16, 24, "cpu", ["torch", "torch-fp16"], runs=3, warmup=1))
    rows = {x["backend"]: x for x in r.results}
    assert rows["torch"]["identical_to_fp32"] and rows["torch"]["speedup_vs_torch"] == 1.0
    assert rows["torch-fp16"]["status"] == "ok" and 0 < rows["torch-fp16"]["max_abs_diff_vs_fp32"] < 0.05
    assert {x["backend"] for x in r.results} == set(rows) and len(rows) == len(backend_names())
    assert rows["torch-compile"]["status"] == "skipped" and "not requested" in rows["torch-compile"]["reason"]


def test_rounds_take_turns_and_time_every_run(monkeypatch):
    """--rounds 3 of 5 runs: each backend starts (its first round) in order, then the rounds
    go to every backend in turn, reversed every other round; every run is timed once."""
    import srx.bench.measure as measure

    calls = []
    real = measure.timed_runs

    def recorded(runner, staged, runs):
        calls.append((runner.name, runs))
        return real(runner, staged, runs)

    monkeypatch.setattr(measure, "timed_runs", recorded)
    src = ModelSource.from_module(build_model("safmn", 2, dim=8, n_blocks=1))
    r = run_bench(src, BenchConfig(16, 24, "cpu", ["torch", "torch-fp16"], runs=5, warmup=1, rounds=3))
    assert calls == [("torch", 2), ("torch-fp16", 2), ("torch-fp16", 2), ("torch", 2), ("torch", 1), ("torch-fp16", 1)]
    rows = {x["backend"]: x for x in r.results}
    assert rows["torch"]["identical_to_fp32"] and rows["torch-fp16"]["max_abs_diff_vs_fp32"] < 0.05
    assert r.to_json()["rounds"] == 3 and "timed in 3 rounds" in r.format()
    assert rows["torch-compile"]["status"] == "skipped"


def test_a_backend_failing_in_a_later_round_fails_alone(monkeypatch):
    import srx.bench.measure as measure

    real, rounds_run = measure.timed_runs, []

    def fp16_fails_in_round_2(runner, staged, runs):
        if runner.name == "torch-fp16" and "torch-fp16" in rounds_run:
            raise RuntimeError("device lost")
        rounds_run.append(runner.name)
        return real(runner, staged, runs)

    monkeypatch.setattr(measure, "timed_runs", fp16_fails_in_round_2)
    src = ModelSource.from_module(build_model("safmn", 2, dim=8, n_blocks=1))
    r = run_bench(src, BenchConfig(16, 24, "cpu", ["torch", "torch-fp16"], runs=4, warmup=0, rounds=2))
    rows = {x["backend"]: x for x in r.results}
    assert rows["torch-fp16"]["status"] == "failed" and "device lost" in rows["torch-fp16"]["reason"]
    assert rows["torch"]["status"] == "ok" and rows["torch"]["speedup_vs_torch"] == 1.0
    assert rounds_run == ["torch", "torch-fp16", "torch"]


def test_rounds_are_checked_against_the_runs():
    with pytest.raises(BadInput, match="--rounds 0: need at least 1"):
        BenchConfig(rounds=0)
    with pytest.raises(BadInput, match="--rounds 11 is more than the 10 timed runs"):
        BenchConfig(device="cpu", rounds=11).resolved()


def test_bench_cli_json_fields(tmp_path):
    weights = tmp_path / "tiny.pth"
    torch.save({"params": build_model("safmn", 4, dim=8, n_blocks=1).state_dict()}, weights)
    out, plot = tmp_path / "b.json", tmp_path / "b.png"
    args = ["bench", "--weights", str(weights), "--input", "40x24", "--runs", "2", "--warmup", "1"]
    # --batch 2: every backend the CPU runs by default (torch, torch-compile, onnxruntime, openvino) takes a batch.
    proc = run_srx(*args, "--batch", "2", "--device", "cpu", "--json", str(out), "--plot", str(plot))
    assert proc.returncode == 0, proc.stderr
    d = json.loads(out.read_text())
    for key in ("device", "versions", "input", "scale", "runs", "results", "complexity", "accuracy", "model"):
        assert key in d, key
    assert d["device"]["name"] and d["versions"]["srx"] and d["input"] == "40x24" and d["scale"] == 4
    assert d["runs"] == 2 and d["model"]["trained"] and not d["untrained"] and d["batch"] == 2
    rows = {r["backend"]: r for r in d["results"]}
    assert set(rows) == {
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
    }
    t = rows["torch"]
    assert t["status"] == "ok" and t["precision"] == "fp32"
    assert set(t["latency_ms"]) >= {"median", "p90", "mean", "min"} and t["fps"] > 0
    assert t["peak_memory_mb"] is not None and t["max_abs_diff_vs_fp32"] == 0 and t["psnr_vs_fp32"] is None
    for r in rows.values():
        assert r["status"] in ("ok", "skipped") and (r["status"] == "ok" or r["reason"])
        if r["status"] == "ok":
            assert r["fps"] == pytest.approx(2000.0 / r["latency_ms"]["median"], rel=1e-3)
            assert r["mode"] and r["speedup_vs_best_peer"] > 0
    # OpenVINO where installed (BF16 where the CPU has it); openvino-int8 needs a Q/DQ file.
    openvino = {n for n in ("openvino", "openvino-bf16") if check_backend(n, "cpu").ok}
    assert {n for n, r in rows.items() if r["status"] == "ok"} == {"torch", "torch-compile", "onnxruntime", *openvino}
    assert d["best_peer"]["backend"] in ("torch", "torch-compile")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "torch" in proc.stdout and "skipped" in proc.stdout

    again = run_srx(*args, "--batch", "2", "--backends", "torch", "--compare", str(out), "--json", "-")
    assert again.returncode == 0, again.stderr
    d2 = json.loads(again.stdout)
    assert d2["compare"]["rows"][0]["backend"] == "torch" and "compared with" in again.stderr


def test_bench_seeded_model_is_labelled_untrained():
    args = ["--input", "16x16", "--runs", "1", "--warmup", "0", "--backends", "torch", "--weights", "seeded"]
    proc = run_srx("bench", *args, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["untrained"] and "untrained: for latency only" in d["model"]["label"]
    assert "untrained: for latency only" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backends", "torch,tensort"], "unknown backend 'tensort'"),
        (["--input", "320"], "not WIDTHxHEIGHT"),
        (["--input", "4x4"], "smaller than this model's minimum"),
        (["--runs", "0"], "at least 1 timed run"),
        (["--compare", "/nonexistent/old.json"], "does not exist"),
        (["--json", "/nonexistent/dir/b.json"], "cannot write"),
        (["--scale", "5"], "not supported"),
        (["--model", "/nonexistent.onnx"], "does not exist"),
        (["--batch", "0"], "--batch 0: need at least 1"),
        (["--compile-mode", "fastest"], "'fastest' is not one of"),
        (["--rounds", "0"], "--rounds 0: need at least 1"),
        (["--runs", "2", "--rounds", "3"], "--rounds 3 is more than the 2 timed runs"),
        (["--video", "clip.mp4", "--rounds", "2"], "--rounds, --input cannot be combined with --video"),
    ],
)
def test_bench_bad_input_is_one_line_exit_2(args, message):
    line = assert_one_line_error(run_srx("bench", "--runs", "1", "--warmup", "0", "--input", "16x16", *args), 2)
    assert message in line


def test_compare_rows():
    def res(ms, mem):
        row = {"backend": "torch", "status": "ok", "latency_ms": {"median": ms}, "peak_memory_mb": mem}
        return {"input": "320x180", "scale": 4, "batch": 1, "device": {"name": "x"}, "model": {}, "results": [row]}

    c = compare(res(50.0, 10.0), res(100.0, 12.0))
    assert c["rows"][0]["speedup"] == 2.0 and c["rows"][0]["latency_change_pct"] == -50.0
    assert c["rows"][0]["memory_change_mb"] == -2.0 and not c["caveats"]


def _run_record(**changes):
    """A `srx bench --json` result with the fields `caveats` compares; `changes` replace some."""
    rec = {
        "input": "320x180",
        "scale": 4,
        "batch": 1,
        "inputs": {"source": "synthetic (seed 0)"},
        "device": {"kind": "cpu", "name": "AMD EPYC"},
        "model": {"spec": {"arch": "safmn", "dim": 36}, "label": "safmn x4", "source": "m.onnx", "precision": "fp32"},
        "versions": {"srx": "0.1.0", "torch": "2.9.1", "onnxruntime": "1.23.2", "numpy": "2.3.5"},
        "results": [{"backend": "onnxruntime", "status": "ok", "precision": "fp32", "latency_ms": {"median": 10.0}}],
    }
    return {**rec, **changes}


def test_compare_caveats_name_input_device_and_versions():
    """`srx bench --compare`: each way the two runs differ is named, with both values (issue 16 point 4)."""
    old = _run_record()
    assert caveats(_run_record(), old) == []
    new = _run_record(
        input="1280x720",
        device={"kind": "cuda", "name": "NVIDIA H200"},
        versions={**old["versions"], "torch": "2.10.0", "onnxruntime": "1.24.1"},
    )
    assert caveats(new, old) == [
        "input differs (320x180 before, 1280x720 now)",
        "device differs (cpu AMD EPYC before, cuda NVIDIA H200 now)",
        "versions differ: torch 2.9.1 -> 2.10.0, onnxruntime 1.23.2 -> 1.24.1",
    ]
    assert compare(new, old)["caveats"] == caveats(new, old)
    text = format_compare(compare(new, old), "old.json")
    for c in caveats(new, old):
        assert f"WARNING: {c}" in text


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        (
            {"model": {"spec": {"arch": "safmnpp"}, "label": "safmnpp x4", "source": "m.onnx", "precision": "fp32"}},
            "model differs (safmn x4 before, safmnpp x4 now)",
        ),
        ({"scale": 2}, "scale differs (4 before, 2 now)"),
        ({"batch": 4}, "batch differs (1 before, 4 now)"),
        ({"inputs": {"source": "images in ./photos"}}, "inputs differ (synthetic (seed 0) before)"),
        (
            {"versions": {"srx": "0.1.0", "torch": "2.9.1", "onnxruntime": "1.23.2"}},
            "versions differ: numpy 2.3.5 -> -",
        ),
        ({"device": {"kind": "cpu", "name": "Intel Xeon"}}, "device differs (cpu AMD EPYC before, cpu Intel Xeon now)"),
        ({"rounds": 5}, "rounds differ (1 before, 5 now)"),  # a run from before --rounds took 1
    ],
)
def test_compare_caveats_one_difference_one_caveat(changes, named):
    assert caveats(_run_record(**changes), _run_record()) == [named]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("runs", 0, "--runs 0: need at least 1"), ("warmup", -1, "--warmup -1: cannot be negative"),
     ("threads", 0, "--threads 0: need at least 1")],
)  # fmt: skip
def test_bench_config_checks_its_counts(field, value, message):
    """BenchConfig owns these checks (issue 18), so the CLI and library callers get the same answer."""
    with pytest.raises(BadInput, match=message):
        BenchConfig(**{field: value})


def test_bench_batch_on_every_cpu_backend_and_a_fixed_batch_onnx(tmp_path):
    """--batch 4: torch and torch-fp16 on the CPU take it, onnxruntime runs the dynamic export;
    an ONNX file with a fixed batch of 1 is skipped with the reason, not failed."""
    from srx.export.model import onnx_from_model

    model = build_model("safmn", 2, dim=8, n_blocks=1)
    fixed = tmp_path / "fixed.onnx"
    fixed.write_bytes(onnx_from_model(model, dynamic=False, input_size=(24, 16)).SerializeToString())
    weights = tmp_path / "tiny.pth"
    torch.save({"params": model.state_dict()}, weights)
    base = ["bench", "--input", "24x16", "--runs", "2", "--warmup", "1", "--batch", "4", "--device", "cpu"]
    proc = run_srx(*base, "--weights", str(weights), "--backends", "torch,torch-fp16,onnxruntime", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    rows = {r["backend"]: r for r in d["results"] if r["status"] == "ok"}
    assert set(rows) == {"torch", "torch-fp16", "onnxruntime"} and d["batch"] == 4
    assert rows["onnxruntime"]["max_abs_diff_vs_fp32"] < 1e-4 and d["accuracy"]["inputs"] == 8
    assert "dims pinned" in next(iter(rows["onnxruntime"]["settings"]["graphs"].values()))
    proc = run_srx(*base, "--model", str(fixed), "--backends", "onnxruntime", "--json", "-")
    assert proc.returncode == 2, proc.stderr  # nothing could run: every row skipped
    row = next(r for r in json.loads(proc.stdout)["results"] if r["backend"] == "onnxruntime")
    assert row["status"] == "skipped" and "has a fixed batch of 1" in row["reason"] and "--batch 4" in row["reason"]
