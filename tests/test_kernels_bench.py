"""bench/kernels_bench.py: it refuses to run without a GPU, and every code path it can
take without one works (--smoke: CPU, Triton interpreter, one block, 23x17; no results)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO

SCRIPT = REPO / "bench" / "kernels_bench.py"


def _run(*args: str, interpret: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TRITON_INTERPRET", None)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the benchmark would run")
def test_benchmark_exits_with_a_clear_message_without_a_gpu(tmp_path):
    proc = _run("--out", str(tmp_path), interpret=False)
    assert proc.returncode == 2
    assert "needs a CUDA GPU" in proc.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs the 'triton' package")
def test_benchmark_smoke_run_covers_every_cpu_code_path(tmp_path):
    proc = _run("--smoke", "--out", str(tmp_path), interpret=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = tmp_path.iterdir()
    result = json.loads((folder / "kernels.json").read_text())
    assert result["smoke_test_not_a_result"] is True
    assert (folder / "kernels.log").read_text().startswith("srx kernels bench")
    rows = result["results"]
    assert all(r.get("status", "ok") == "ok" for r in rows), [r for r in rows if r.get("status", "ok") != "ok"]
    kernels = {r["kernel"] for r in rows if r["kind"] == "kernel"}
    assert kernels == {
        "conv_head",
        "multiscale_pool",
        "safm_tail",
        "ccm",
        "conv_tail",
        "block (pool + safm_tail + ccm)",
    }
    ccm_rows = [r for r in rows if r["kind"] == "kernel" and r["kernel"] == "ccm"]
    assert all(r["bytes_model"] > 0 and r["floor_ms"] > 0 and r["eager_ms"]["median"] > 0 for r in ccm_rows)
    models = {(r["backend"], r["precision"], r["batch"]): r for r in rows if r["kind"] == "model"}
    expected = [
        ("torch", "fp32"),
        ("torch-fp16", "fp16"),
        ("torch-fp16 + CUDA graph", "fp16"),
        ("srx fused + CUDA graph", "fp16"),
        ("srx fused + CUDA graph", "bf16"),
        ("srx fused + CUDA graph", "fp32-tf32x3"),
        ("srx fused + CUDA graph", "fp32-ieee"),
    ]
    for batch in (1, 2):
        for backend, precision in expected:
            row = models[(backend, precision, batch)]
            assert row["latency_ms"]["median"] > 0 and row["psnr_vs_fp32"] > 0, row
    # FP32 fused is exact (1e-4 contract) in both exact modes; FP16 keeps >= 50 dB.
    assert models[("srx fused + CUDA graph", "fp32-ieee", 1)]["max_abs_diff_vs_fp32"] <= 1e-4
    assert models[("srx fused + CUDA graph", "fp32-tf32x3", 1)]["max_abs_diff_vs_fp32"] <= 1e-4
    assert models[("srx fused + CUDA graph", "fp16", 1)]["psnr_vs_fp32"] >= 50
