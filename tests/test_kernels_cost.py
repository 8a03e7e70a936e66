"""srx.kernels.cost: the analytical traffic model behind docs/kernels.md (no Triton needed)."""

from __future__ import annotations

import pytest

from srx.kernels.cost import H100, fmm_breakdown, fmm_traffic, model_traffic, roofline_floor_s


@pytest.mark.parametrize(
    ("elem", "eager_mb", "fused_mb"),
    [(4, 463.17, 85.47), (2, 231.58, 42.74)],
    ids=["fp32", "fp16"],
)
def test_paper_block_bytes_are_the_ones_documented(elem, eager_mb, fused_mb):
    # docs/kernels.md quotes these; if the model changes, update the docs with it.
    assert round(fmm_traffic(36, 2.0, 180, 320, elem, fused=False).bytes / 1e6, 2) == eager_mb
    assert round(fmm_traffic(36, 2.0, 180, 320, elem, fused=True).bytes / 1e6, 2) == fused_mb


def test_fused_block_moves_what_its_kernels_read_and_write():
    parts = fmm_breakdown(36, 2.0, 180, 320, 2, fused=True)
    m = 40 * 180 * 320 * 2  # one padded NHWC FP16 map: 36 channels stored as 40
    low = 16 * (90 * 160 + 45 * 80 + 22 * 40) * 2  # pooled maps, 9 channels stored as 16
    assert parts["multiscale_pool"] == m + low  # u in, pooled maps out
    assert parts["safm_tail"] == 2 * m + low + 2 * m  # x, u in, pooled maps gathered, x1, LN2(x1) out
    assert parts["ccm"] == 2 * m + 2 * m  # x1, LN2(x1) in, output and the next LN1 of it out
    last = fmm_breakdown(36, 2.0, 180, 320, 2, fused=True, last=True, long_skip=True)
    assert last["ccm"] == 2 * m + m + m  # no next LN1; the long skip read instead


def test_model_flops_match_the_papers_multiply_adds():
    # Paper: 13.56 G multiply-adds for 320x180 -> 1280x720 (x4, dim 36, 8 blocks).
    t = model_traffic("safmn", 4, 36, 8, 2.0, 180, 320, 4, fused=False)
    assert 13.4e9 <= t.flops / 2 <= 14.0e9


def test_floor_is_the_larger_of_bytes_and_flops_bounds():
    fp16 = model_traffic("safmn", 4, 36, 8, 2.0, 180, 320, 2, fused=True)
    fp32 = model_traffic("safmn", 4, 36, 8, 2.0, 180, 320, 4, fused=True)
    assert roofline_floor_s(fp16, H100["hbm_bytes_per_s"], H100["tensor_fp16_flops"]) == pytest.approx(
        fp16.bytes / 3.35e12
    )
    assert roofline_floor_s(fp32, H100["hbm_bytes_per_s"], H100["fp32_flops"]) == pytest.approx(fp32.flops / 67e12)
    eager = model_traffic("safmn", 4, 36, 8, 2.0, 180, 320, 2, fused=False)
    assert eager.bytes > 5 * fp16.bytes and eager.launches == 316 and fp16.launches == 26
