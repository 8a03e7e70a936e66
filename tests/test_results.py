"""Typed command results (issue 24): the text and `--json` render one object, and the JSON keeps
the schema (keys and their order) the commands always wrote."""

from __future__ import annotations

import json

import pytest

from srx.bench.result import BenchResult
from srx.errors import BadInput
from srx.evaluate import EvalResult, ImageScore
from srx.upscale import UpscaleResult

BENCH_KEYS = ["srx_version", "timestamp", "command", "model", "untrained", "device", "versions", "input", "output",
              "batch", "scale", "runs", "warmup", "rounds", "inputs", "timing", "accuracy", "results"]  # fmt: skip


def _bench(**kw) -> BenchResult:
    device = {"kind": "cpu", "name": "cpu", "cpu": "test CPU", "cpus": 2, "cpu_flags": ["avx2"]}
    model = {"label": "SAFMN x4 (seeded)", "arch": "safmn", "trained": False, "source": "", "precision": "fp32",
             "spec": {}}  # fmt: skip
    row = {"backend": "torch", "precision": "fp32", "status": "ok", "mode": "eager", "fps": 100.0,
           "latency_ms": {"median": 10.0, "p90": 11.0, "mean": 10.5, "min": 9.0}, "identical_to_fp32": True,
           "peak_memory_mb": 12.0, "memory_method": "RSS"}  # fmt: skip
    return BenchResult("0", "2026-12-06T00:00:00+00:00", ["srx", "bench"], model, device, "24x16", "96x64", 1, 4, 3,
                       1, {"source": "synthetic", "count": 4}, "perf_counter", {"inputs": 3, "reference": "torch"},
                       {"params": 1, "macs": None, "activations": None}, [row], **kw)  # fmt: skip


def test_bench_json_keeps_the_schema_order():
    r = _bench(note="embedded default model, untrained", best_peer={"backend": "torch", "median_ms": 10.0})
    assert list(r.to_json()) == [*BENCH_KEYS, "note", "complexity", "best_peer"]
    assert r.to_json()["untrained"] is True
    r.compare = {"old": "old.json", "rows": [], "caveats": []}
    assert list(r.to_json())[-1] == "compare"
    json.dumps(r.to_json())  # plain JSON types only


def test_bench_text_renders_the_same_object():
    r = _bench(note="embedded default model, untrained")
    text = r.format()
    assert text.startswith("srx bench: SAFMN x4 (seeded)") and "NOTE: embedded default model, untrained" in text
    assert "torch" in text and "identical" in text and "peak memory: RSS" in text
    r.compare = {"old": "old.json", "rows": [], "caveats": ["input differs (x before, y now)"]}
    assert "compared with old.json:" in r.format() and "WARNING: input differs" in r.format()


def test_eval_text_and_json_are_one_object():
    r = EvalResult("Set5", 4, "bicubic", [ImageScore("baby", 30.0, 0.9), ImageScore("bird", 32.0, 0.95)], "p", "l")
    d = r.to_json()
    assert list(d)[:6] == ["dataset", "scale", "model", "psnr_y", "ssim_y", "images"] and d["psnr_y"] == 31.0
    assert r.to_dict() == d
    assert r.format().splitlines()[-1].split()[:2] == ["mean", "31.0000"]


def test_upscale_result_both_shapes():
    nothing = UpscaleResult([], [], ["a.png"])
    assert nothing.to_json() == {"outputs": [], "failed": [], "skipped": ["a.png"]}
    assert nothing.format() == "nothing to do: every output exists already (1; --skip-existing)"
    nothing.check()
    out = {"input": "a.png", "output": "o/a.png", "size_out": "8x8", "seconds": 0.1, "tiles": 1,
           "tiling": {"tile": None}}  # fmt: skip
    r = UpscaleResult([out], [{"input": "b.png", "error": "bad"}], [], "torch", "cpu", "SAFMN x4", True)
    assert list(r.to_json()) == ["outputs", "failed", "backend", "device", "model", "skipped", "untrained"]
    assert "upscaled 1 image with SAFMN x4 on torch (cpu)" in r.format() and "NOTE: untrained model" in r.format()
    with pytest.raises(BadInput, match=r"1 of 2 input\(s\) could not be upscaled"):
        r.check()


def test_quantize_result_renders_its_json_record():
    from srx.precision.int8 import Int8Report
    from srx.precision.result import QuantizeResult

    report = Int8Report(calibration_images=4, held_out_images=1, psnr_vs_fp32=45.1, psnr_fp32_db=30.0,
                        psnr_int8_db=29.96, psnr_drop_db=0.04, int8_layers=["a", "b"], kept_layers=["c"])  # fmt: skip
    r = QuantizeResult("m.int8.onnx", report, None, "m.onnx")
    d = r.to_json()
    assert list(d) == ["onnx", *report.to_dict(), "max_psnr_drop", "source_onnx"]
    assert d["kept_layers"] == ["c"] and d["psnr_drop_db"] == 0.04 and d["max_psnr_drop"] is None
    assert r.format().splitlines()[:2] == ["wrote m.int8.onnx", "  INT8 layers   2 of 3 (kept in FP16: c)"]
    json.dumps(d)


def test_engine_build_renders_its_json_record():
    from srx.engines.build import EngineBuild

    facts = {"backend": "tensorrt-rtx", "backend_version": "1.0", "precision": "fp16", "network": "strongly typed",
             "profile": {"min": "1x3x64x64", "opt": "1x3x360x640", "max": "1x3x1080x1920", "batch": "1"},
             "build_seconds": 2.5, "engine_bytes": 2**20}  # fmt: skip
    r = EngineBuild(facts, "m.engine", "m.fp16.onnx", "m.onnx", "m.engine.json", 0.5, [], [], {"fp16": {"n": 1}})
    d = r.to_json()
    assert list(d) == [*facts, "engine", "precision_onnx", "source_onnx", "sidecar", "transform_seconds", "notes",
                       "tensorrt_warnings", "fp16"]  # fmt: skip
    assert d["engine_bytes"] == 2**20 and d["fp16"] == {"n": 1} and "quantize" not in d
    assert r.format().startswith("wrote m.engine (1.0 MiB) and m.engine.json")
