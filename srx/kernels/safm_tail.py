"""SAFM's full-resolution part in one pass: chunk-0 depthwise 3x3, nearest gather of the
three low-resolution maps, the 1x1 aggregation, GELU, modulation and the residual.

With u = LN1(x) (or u = x without LayerNorm), Cq = C / 4 and D_l from srx.kernels.multiscale:

    s0[c, p]        = b0[c] + sum_{dy,dx} w0[c, dy, dx] * u[c, p + (dy, dx)]      (zero outside), c < Cq
    s_l[c, (h, w)]  = D_l[c, nh_l(h), nw_l(w)],  nh_l(h) = min(floor(f32(h) * f32(o_h)/f32(H)), o_h - 1)
    a[k, p]         = b_aggr[k] + sum_{l, c} W_aggr[k, l*Cq + c] * s_l[c, p]
    y[k, p]         = GELU(a[k, p]) * u[k, p] + x[k, p]

nh_l / nw_l are PyTorch's nearest indices in its float32 arithmetic (srx.models.layers.
nearest_indices); the scale is divided in-kernel with round-to-nearest so it is the same
float32 number PyTorch computes. The upsampled maps and their concatenation are never
stored: each output tile gathers exactly the low-resolution pixels it needs, and the
1x1 conv consumes the four branches as four K-slices of one tl.dot accumulation.

Optionally the epilogue also writes the per-pixel statistics of y for the next
LayerNorm (LN2), so CCM can normalise as a prologue and LN2(y) is never stored.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from srx.errors import BadInput
from srx.kernels._common import (
    MIN_DOT,
    channel_stats,
    check_input,
    dot_dtype,
    gelu,
    load_stats,
    pow2,
    stats_buffer,
    tile,
)
from srx.kernels.multiscale import LowRes

TILE_ELEMENTS = 4096


@triton.jit
def _normalise(v, mean, rstd, lw, lb):
    """LayerNorm affine of a [pixels, channels] tile from per-pixel statistics."""
    return (v - mean[:, None]) * rstd[:, None] * lw[None, :] + lb[None, :]


@triton.jit
def _gather_level(
    acc,
    LOW,
    off,
    oh,
    ow,
    AGGR_WT,
    C,
    CQ,
    level,
    n,
    hh,
    ww,
    H,
    W,
    pm,
    cq,
    k,
    DOT_DTYPE: tl.constexpr,  # the caller's GEMM operand type
):
    """acc += (nearest-upsampled D_level) @ W_aggr[level * Cq : (level + 1) * Cq, :]^T."""
    # tl.cast, not .to(): Triton passes an int argument equal to 1 (a 1-pixel level) as a constexpr.
    sh = tl.math.div_rn(tl.cast(oh, tl.float32), tl.cast(H, tl.float32))
    sw = tl.math.div_rn(tl.cast(ow, tl.float32), tl.cast(W, tl.float32))
    # Non-negative, so truncation is floor.
    src_h = tl.minimum((hh.to(tl.float32) * sh).to(tl.int32), oh - 1)
    src_w = tl.minimum((ww.to(tl.float32) * sw).to(tl.int32), ow - 1)
    cqm = cq < CQ
    ptr = LOW + off + (n * CQ + cq)[None, :] * (oh * ow) + (src_h * ow + src_w)[:, None]
    g = tl.load(ptr, mask=pm[:, None] & cqm[None, :], other=0.0)
    wt = tl.load(AGGR_WT + (level * CQ + cq)[:, None] * C + k[None, :], mask=cqm[:, None] & (k < C)[None, :], other=0.0)
    return tl.dot(g.to(DOT_DTYPE), wt.to(DOT_DTYPE), acc, input_precision="ieee")


@triton.jit
def _safm_tail_kernel(
    X,
    STATS_IN,
    LN_W,
    LN_B,
    DW0_W,
    DW0_B,
    LOW,
    off1,
    oh1,
    ow1,
    off2,
    oh2,
    ow2,
    off3,
    oh3,
    ow3,
    AGGR_WT,
    AGGR_B,
    Y,
    STATS_OUT,
    C,
    CQ,
    H,
    W,
    eps,
    HAS_LN: tl.constexpr,  # paper SAFMN: u = LN1(x) rebuilt from STATS_IN; NTIRE 2023: u = x
    STORE_STATS: tl.constexpr,  # write LN2 statistics of y (paper SAFMN) so CCM normalises as a prologue
    BLOCK_P: tl.constexpr,  # pixels per program; [BLOCK_P, C_PAD] FP32 tiles (x, u, acc) stay in registers
    C_PAD: tl.constexpr,  # dim rounded up to a power of two >= 16 (tl.arange; tl.dot's N >= 16)
    CQ_PAD: tl.constexpr,  # dim/4 rounded up likewise: the K of each branch's tl.dot slice
    DOT_DTYPE: tl.constexpr,  # tl.float32 (IEEE, exact) for FP32 activations; FP16/BF16 use tensor cores
):
    n = tl.program_id(1)
    HW = H * W
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    pm = p < HW
    hh = p // W
    ww = p % W
    k = tl.arange(0, C_PAD)
    km = k < C
    cq = tl.arange(0, CQ_PAD)
    cqm = cq < CQ
    x_n = X + n.to(tl.int64) * C * HW
    stats_n = STATS_IN + n.to(tl.int64) * 2 * HW
    mask = pm[:, None] & km[None, :]

    x = tl.load(x_n + k[None, :] * HW + p[:, None], mask=mask, other=0.0).to(tl.float32)
    if HAS_LN:
        lw = tl.load(LN_W + k, mask=km, other=0.0).to(tl.float32)
        lb = tl.load(LN_B + k, mask=km, other=0.0).to(tl.float32)
        mean, rstd = load_stats(stats_n, p, pm, HW)
        u = _normalise(x, mean, rstd, lw, lb)
        lw0 = tl.load(LN_W + cq, mask=cqm, other=0.0).to(tl.float32)
        lb0 = tl.load(LN_B + cq, mask=cqm, other=0.0).to(tl.float32)
    else:
        u = x

    # Branch 0: depthwise 3x3 on u's first chunk at full resolution (neighbours come from L1/L2).
    s0 = tl.zeros([BLOCK_P, CQ_PAD], tl.float32) + tl.load(DW0_B + cq, mask=cqm, other=0.0).to(tl.float32)[None, :]
    for tap in tl.static_range(9):
        r = hh + (tap // 3 - 1)
        s = ww + (tap % 3 - 1)
        valid = pm & (r >= 0) & (r < H) & (s >= 0) & (s < W)
        nb = r * W + s
        vmask = valid[:, None] & cqm[None, :]
        v = tl.load(x_n + cq[None, :] * HW + nb[:, None], mask=vmask, other=0.0).to(tl.float32)
        if HAS_LN:
            m_t, r_t = load_stats(stats_n, nb, valid, HW)
            v = tl.where(vmask, _normalise(v, m_t, r_t, lw0, lb0), 0.0)  # zero padding of u, not of x
        s0 += v * tl.load(DW0_W + cq * 9 + tap, mask=cqm, other=0.0).to(tl.float32)[None, :]

    acc = tl.zeros([BLOCK_P, C_PAD], tl.float32)
    wt0 = tl.load(AGGR_WT + cq[:, None] * C + k[None, :], mask=cqm[:, None] & km[None, :], other=0.0)
    acc = tl.dot(s0.to(DOT_DTYPE), wt0.to(DOT_DTYPE), acc, input_precision="ieee")
    acc = _gather_level(acc, LOW, off1, oh1, ow1, AGGR_WT, C, CQ, 1, n, hh, ww, H, W, pm, cq, k, DOT_DTYPE)
    acc = _gather_level(acc, LOW, off2, oh2, ow2, AGGR_WT, C, CQ, 2, n, hh, ww, H, W, pm, cq, k, DOT_DTYPE)
    acc = _gather_level(acc, LOW, off3, oh3, ow3, AGGR_WT, C, CQ, 3, n, hh, ww, H, W, pm, cq, k, DOT_DTYPE)
    acc += tl.load(AGGR_B + k, mask=km, other=0.0).to(tl.float32)[None, :]

    y = gelu(acc) * u + x
    if STORE_STATS:
        mean2, rstd2 = channel_stats(y, mask, C, eps)
        so = STATS_OUT + n.to(tl.int64) * 2 * HW
        tl.store(so + p, mean2, mask=pm)
        tl.store(so + HW + p, rstd2, mask=pm)
    tl.store(Y + n.to(tl.int64) * C * HW + k[None, :] * HW + p[:, None], y.to(Y.dtype.element_ty), mask=mask)


def safm_tail(
    x: torch.Tensor,
    low: LowRes,
    dw0_weight: torch.Tensor,
    dw0_bias: torch.Tensor,
    aggr_wt: torch.Tensor,
    aggr_bias: torch.Tensor,
    *,
    stats: torch.Tensor | None = None,
    ln_weight: torch.Tensor | None = None,
    ln_bias: torch.Tensor | None = None,
    want_stats: bool = False,
    eps: float = 1e-6,
    block_p: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """y = x + SAFM(u) given the low-res maps D_l (already depthwise-convolved).

    dw0_weight (Cq, 9), dw0_bias (Cq,), aggr_wt (C_in, C_out) = the 1x1 weight transposed,
    aggr_bias (C,). With `stats` (and the LN weight and bias) u = LN(x), else u = x.
    Returns (y, stats of y for the next LayerNorm or None).
    """
    x = check_input(x, _safm_tail_kernel, "safm_tail")
    n, c, h, w = x.shape
    cq = c // 4
    if low.cq != cq or low.n != n or tuple(aggr_wt.shape) != (c, c) or tuple(dw0_weight.shape) != (cq, 9):
        raise BadInput(f"safm_tail: weights or low-res maps do not match a {c}-channel input")
    c_pad = pow2(c, MIN_DOT)
    block_p = block_p or tile(max(MIN_DOT, min(128, TILE_ELEMENTS // c_pad)), _safm_tail_kernel)
    y = torch.empty_like(x)
    stats_out = stats_buffer(x) if want_stats else None
    has_ln = stats is not None
    (oh1, ow1), (oh2, ow2), (oh3, ow3) = low.sizes
    grid = (triton.cdiv(h * w, block_p), n)
    _safm_tail_kernel[grid](
        x,
        stats if has_ln else x,
        ln_weight if has_ln else x,
        ln_bias if has_ln else x,
        dw0_weight,
        dw0_bias,
        low.buf,
        low.offsets[0],
        oh1,
        ow1,
        low.offsets[1],
        oh2,
        ow2,
        low.offsets[2],
        oh3,
        ow3,
        aggr_wt,
        aggr_bias,
        y,
        stats_out if want_stats else x,
        c,
        cq,
        h,
        w,
        eps,
        HAS_LN=has_ln,
        STORE_STATS=want_stats,
        BLOCK_P=block_p,
        C_PAD=c_pad,
        CQ_PAD=pow2(cq, MIN_DOT),
        DOT_DTYPE=dot_dtype(x, _safm_tail_kernel),
    )
    return y, stats_out
