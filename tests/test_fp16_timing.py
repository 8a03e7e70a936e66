"""bench/fp16_timing.py (the torch-fp16 question of issue 13): it refuses to run without a
GPU, and its --smoke run takes every code path on the CPU (tiny model; no results)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO

SCRIPT = REPO / "bench" / "fp16_timing.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the measurement would run")
def test_needs_a_gpu(tmp_path):
    proc = _run("--out", str(tmp_path))
    assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stderr and not any(tmp_path.iterdir())


def test_smoke_run_covers_every_protocol_combination(tmp_path):
    proc = _run("--smoke", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = tmp_path.iterdir()
    d = json.loads((folder / "fp16_timing.json").read_text())
    assert d["smoke_test_not_a_result"] and len(d["rows"]) == 2 * 16
    combos = {(r["backend"], r["sync"], r["host"], r["rotate"], r["cudnn_benchmark"]) for r in d["rows"]}
    assert len(combos) == 32 and all(r["median_ms"] > 0 for r in d["rows"])
    assert set(d["profiles"]) == {f"{b} cudnn_benchmark={f}" for b in ("torch", "torch-fp16") for f in (False, True)}
    assert all(p["status"] == "ok" and p["busy_ms"] > 0 for p in d["profiles"].values())
    assert "not a measurement" in (folder / "fp16_timing.log").read_text()
