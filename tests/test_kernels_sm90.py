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

needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs the 'triton' package")


def _script():
    spec = importlib.util.spec_from_file_location("kernels_sm90", REPO / "bench" / "kernels_sm90.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(sys.modules[spec.name])
    return sys.modules[spec.name]


def test_ctas_per_sm_follows_the_h100_limits():
    sm90 = _script()
    # ccm's default: 118 registers (-> 3840 a warp) x 8 warps allows 2; 78 KiB + 1 KiB of shared memory 2.
    assert sm90.ctas_per_sm(118, 8, 79872) == {"CTAS": 2, "CTAS_REG": 2, "CTAS_WARP": 8, "CTAS_SMEM": 2}
    # 130 registers round up to 136 (4352 a warp): 15 warps fit, one CTA of 8.
    assert sm90.ctas_per_sm(130, 8, 16384)["CTAS"] == 1
    # A tiny kernel is held back by the 32-CTA limit, not by its resources.
    assert sm90.ctas_per_sm(16, 1, 0) == {"CTAS": 32, "CTAS_REG": 128, "CTAS_WARP": 64, "CTAS_SMEM": 228}


def test_sass_counts_barriers_load_widths_and_loops():
    sass = """
        /*0000*/                   LDG.E.U16 R2, desc[UR4][R2.64] ;
        /*0010*/                   LDG.E R3, desc[UR4][R4.64] ;
.L_x_0:
        /*0020*/                   LDG.E.64 R4, desc[UR4][R6.64] ;
        /*0030*/               @P0 LDG.E.128 R8, desc[UR4][R6.64] ;
        /*0040*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*0050*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;
        /*0060*/               @P1 BRA `(.L_x_0) ;
        /*0070*/                   EXIT ;
.L_x_1:
        /*0080*/                   BRA `(.L_x_1);
"""
    ops = _script().sass_counts(sass)
    assert (ops["LDG"], ops["LDG16"], ops["LDG32"], ops["LDG64"], ops["LDG128"]) == (4, 1, 1, 1, 1)
    assert ops["BAR_SYNC"] == 1 and ops["LOOPS"] == 1  # the trailing self-branch after EXIT is no loop


@needs_triton
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
    assert all(r["CTAS"] >= 1 and r["BAR_SYNC"] >= 0 for r in rows)  # every kernel fits an SM
    # What issue 22 removed and must not come back: safm_tail's 27 taps serialised through shared
    # memory (129 BAR.SYNC a tile, 1 CTA per SM with Triton 3.9) and the pooling's 2-byte loads.
    safm16 = [r for r in rows if r["kernel"] == "safm_tail" and r["mode"] in ("fp16", "bf16")]
    assert safm16 and all(r["BAR_SYNC"] <= 16 and r["CTAS"] >= 2 for r in safm16)
    pool = [r for r in rows if r["kernel"] == "multiscale_pool"]
    assert pool and all(r["LDG16"] == 0 and r["LDG128"] > 0 and r["BAR_SYNC"] == 0 for r in pool)
