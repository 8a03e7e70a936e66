"""bench/kernels_sm90.py: the fused kernels compiled for sm_90 (H100/H200) on this CPU, read back.

No GPU needed: Triton compiles for GPUTarget("cuda", 90, 32) anywhere, and the cuobjdump and
nvdisasm that ship with it read the cubin. Every kernel the fused default model launches at
320x180 and 1280x720, in each dtype and FP32 precision mode, with each launcher's default
configuration, must not spill registers to local memory, and every kernel that does GEMM
work (a tl.dot) must run it on tensor cores (HGMMA/HMMA) in FP16, BF16 and the TF32 modes.
The exact FP32 mode (ieee) multiplies on the CUDA cores by design.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs the 'triton' package")


def test_every_launched_kernel_compiles_for_sm90_without_spills_and_on_tensor_cores(tmp_path):
    out = tmp_path / "sm90.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TRITON_INTERPRET", None)
    modes = "fp16,bf16,fp32-ieee,fp32-tf32x3,fp32-tf32"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "kernels_sm90.py"),
            "--defaults-only",
            "--modes",
            modes,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    problems = [line for line in proc.stdout.splitlines() if line.startswith("PROBLEM")]
    assert proc.returncode == 0 and not problems, "\n".join(problems) or proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    kernels = {r["kernel"] for r in rows}
    assert kernels == {"conv_head", "multiscale_pool", "safm_tail", "ccm", "conv_tail"}
    assert {r["mode"] for r in rows} == set(modes.split(",")) and {r["input"] for r in rows} == {"320x180", "1280x720"}
    # What the report is for: the CCM's 3x3 conv pipelined through asynchronous copies into
    # Hopper warpgroup MMAs in FP16 (the failure it caught: no HGMMA, 2-byte loads, spills).
    ccm16 = [r for r in rows if r["kernel"] == "ccm" and r["mode"] == "fp16"]
    assert ccm16 and all(r["HGMMA"] > 0 and r["LDGSTS"] > 0 and r["STACK"] == 0 for r in ccm16)
    launches = sum(r["launches"] for r in rows if r["mode"] == "fp16" and r["input"] == "320x180")
    assert launches == 26  # 2 + 3 per block: the whole default model
