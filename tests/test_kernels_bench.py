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
    kernels = {(r["kernel"], r["precision"]) for r in rows if r["kind"] == "kernel"}
    assert {k for k, _ in kernels} == {
        "layer_norm",
        "multiscale_pool + lowres_dwconv",
        "safm_tail",
        "ccm",
        "4 fused kernels",
    }
    models = {(r["backend"], r["precision"]): r for r in rows if r["kind"] == "model"}
    for key in [("torch", "fp32"), ("torch-fp16", "fp16"), ("torch-fused", "fp32"), ("torch-fused", "fp16")]:
        assert models[key]["status"] == "ok", models[key]
        assert models[key]["bytes_model"] > 0 and models[key]["floor_ms_computed"] > 0
    assert models[("torch-fused", "fp32")]["max_abs_diff_vs_fp32"] <= 1e-4
    # No CUDA graph on the CPU: reported with the reason, not dropped.
    assert "needs a CUDA GPU" in models[("torch-fused + CUDA graph", "fp16")]["status"]
