"""The rest of SAFM in one pass: chunk-0 depthwise 3x3, the low-resolution depthwise 3x3s
read at each pixel's nearest position, the 1x1 aggregation, GELU, the modulation, the
residual, and LN2 of the result for CCM.

With u = LN1(x) (u = x without LayerNorm), Cq = C / 4, the pooled maps P_l from
srx.kernels.multiscale and w_l, b_l the depthwise weights of chunk l:

    s_0[p, c] = b_0[c] + sum_{dy,dx} w_0[c, dy, dx] * u[p + (dy, dx), c]                 (zero outside)
    D_l[i, j, c] = b_l[c] + sum_{dy,dx} w_l[c, dy, dx] * P_l[i + dy, j + dx, c]           (zero outside)
    s_l[(h, w), c] = D_l[nh_l(h), nw_l(w), c],  nh_l(h) = min(floor(f32(h) * f32(o_h / H)), o_h - 1)
    a[p, k] = b_aggr[k] + sum_{l, c} W_aggr[k, l*Cq + c] * s_l[p, c]
    y[p, k] = GELU(a[p, k]) * u[p, k] + x[p, k];   u2 = LN2(y) (when asked)

nh_l / nw_l are PyTorch's nearest indices in its float32 arithmetic (srx.models.layers.
nearest_indices); the scale is divided in-kernel with round-to-nearest so it is the same
float32 number PyTorch computes. D_l is never stored: each pixel evaluates the 3x3 at its
source position from P_l (small, cache-resident), which removes a launch per block for
9 cheap multiply-adds per channel. The upsampled maps and their concatenation are never
stored either: the 1x1 conv consumes the four branches as four K slices of one GEMM.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from srx.errors import BadInput
from srx.kernels import tuning
from srx.kernels._common import (
    channel_stride,
    check_nhwc,
    dot_constexprs,
    gelu,
    launch_pixel_tiles,
    layer_norm_rows,
    nhwc_tile,
    pixel_tile,
    pow2,
)
from srx.kernels.multiscale import LowRes, chunk_stride, pool_shifts

# Candidates per compute mode (tuning.compute_mode), default first; each compiles for sm_90
# without spills at 320x180 and 1280x720 (bench/kernels_sm90.py, Triton 3.6 and 3.9). The
# FP32 modes hold wider operands (tf32x3 two per value; ieee both GEMM operands in
# registers), so they take fewer pixels per warp.
SAFM_CONFIGS = {
    "16bit": (tuning.Config(128, 8), tuning.Config(64, 4), tuning.Config(128, 4), tuning.Config(256, 8)),
    "tf32x3": (tuning.Config(128, 8), tuning.Config(64, 8)),
    "tf32": (tuning.Config(128, 8), tuning.Config(64, 8)),
    "ieee": (tuning.Config(64, 8), tuning.Config(32, 4)),
}
SAFM_INTERPRETER = tuning.Config(1024, 4)


def pack_safm(safm: torch.nn.Module, c: int) -> dict[str, torch.Tensor]:
    """SAFM's depthwise and 1x1 weights as the kernel's zero-padded operands."""
    cq = c // 4
    cqp = chunk_stride(cq)
    cp = pow2(channel_stride(c), 16)
    # Branch 0 reads u's chunk 0 from lane 0; the pooled maps hold chunk l from lane shift[l].
    shift = (0, *pool_shifts(c))
    ref = safm.aggr.weight
    dw_w = ref.new_zeros((4, 9, cqp))
    dw_b = ref.new_zeros((4, cqp))
    for lv in range(4):
        conv = safm.mfr[lv]
        dw_w[lv, :, shift[lv] : shift[lv] + cq] = conv.weight.detach().reshape(cq, 9).t()
        if conv.bias is not None:
            dw_b[lv, shift[lv] : shift[lv] + cq] = conv.bias.detach()
    aggr = ref.new_zeros((4 * cqp, cp))
    w = ref.detach().reshape(c, c)  # (out, in)
    for lv in range(4):
        aggr[lv * cqp + shift[lv] : lv * cqp + shift[lv] + cq, :c] = w[:, lv * cq : (lv + 1) * cq].t()
    aggr_b = ref.new_zeros(cp)
    if safm.aggr.bias is not None:
        aggr_b[:c] = safm.aggr.bias.detach()
    return {"dw_w": dw_w.contiguous(), "dw_b": dw_b.contiguous(), "aggr_w": aggr.contiguous(), "aggr_b": aggr_b}


@triton.jit
def _lowres_branch(
    LOW,
    off,
    oh,
    ow,
    DW_W,
    DW_B,
    n,
    hh,
    ww,
    H,
    W,
    pm,
    BLOCK_P: tl.constexpr,
    LEVEL: tl.constexpr,  # branch 1..3
    CQ: tl.constexpr,
    CQP: tl.constexpr,
    SHIFT: tl.constexpr,  # the map's lane of channel 0 (LowRes.shifts)
):
    """D_level at each pixel's nearest low-resolution position (FP32, in the map's lanes
    [SHIFT, SHIFT + Cq), other lanes zero)."""
    # tl.cast, not .to(): Triton passes an int argument equal to 1 (a 1-pixel level) as a constexpr.
    sh = tl.math.div_rn(tl.cast(oh, tl.float32), tl.cast(H, tl.float32))
    sw = tl.math.div_rn(tl.cast(ow, tl.float32), tl.cast(W, tl.float32))
    # Non-negative, so truncation is floor.
    src_h = tl.minimum((hh.to(tl.float32) * sh).to(tl.int32), oh - 1)
    src_w = tl.minimum((ww.to(tl.float32) * sw).to(tl.int32), ow - 1)
    c = tl.arange(0, CQP)
    d = tl.zeros([BLOCK_P, CQP], tl.float32) + tl.load(DW_B + LEVEL * CQP + c).to(tl.float32)[None, :]
    low_n = LOW + off + n.to(tl.int64) * oh * ow * CQP
    for tap in tl.static_range(9):
        i = src_h + (tap // 3 - 1)
        j = src_w + (tap % 3 - 1)
        ok = pm & (i >= 0) & (i < oh) & (j >= 0) & (j < ow)
        v = tl.load(low_n + (i * ow + j)[:, None] * CQP + c[None, :], mask=ok[:, None], other=0.0)
        d += v.to(tl.float32) * tl.load(DW_W + (LEVEL * 9 + tap) * CQP + c).to(tl.float32)[None, :]
    # The other lanes are zero already (zero weights and bias, zero map lanes); the select is
    # there for the compiler. Without it Triton moves the conversion of d to the MMA operand
    # layout up through the sum to each tap's load and weight row: a shared-memory round trip
    # behind two block-wide barriers per tap, 27 taps one after another (129 BAR.SYNC a tile,
    # bench/results/2026-12-06-sm90). With it, d is converted once.
    return tl.where(((c >= SHIFT) & (c < SHIFT + CQ))[None, :], d, 0.0)


@triton.jit
def _full_res_branch(
    u_n,
    DW_W,
    DW_B,
    hh,
    ww,
    H,
    W,
    pm,
    BLOCK_P: tl.constexpr,
    CS: tl.constexpr,
    CQ: tl.constexpr,
    CQP: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
):
    """Branch 0: depthwise 3x3 on u's first chunk at full resolution (neighbours come from
    L1/L2), as the aggregation GEMM's first K slice."""
    # The loads take all CQP lanes (16-byte vectors); lanes >= Cq have zero weights and are
    # cleared below, so whatever they read from the next chunk never reaches the output.
    cq = tl.arange(0, CQP)
    lane_ok = (cq < CS)[None, :]  # only narrower than CQP for dim 8 (CS = 8 < 16)
    s0 = tl.zeros([BLOCK_P, CQP], tl.float32) + tl.load(DW_B + cq).to(tl.float32)[None, :]
    for tap in tl.static_range(9):
        r = hh + (tap // 3 - 1)
        s = ww + (tap % 3 - 1)
        ok = pm & (r >= 0) & (r < H) & (s >= 0) & (s < W)
        v = tl.load(u_n + (r * W + s)[:, None] * CS + cq[None, :], mask=ok[:, None] & lane_ok, other=0.0)
        s0 += v.to(tl.float32) * tl.load(DW_W + tap * CQP + cq).to(tl.float32)[None, :]
    return tl.where((cq < CQ)[None, :], s0, 0.0).to(DOT_DTYPE)


@triton.jit
def _aggregate(
    s0,
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
    DW_W,
    DW_B,
    AGGR_W,
    AGGR_B,
    n,
    hh,
    ww,
    H,
    W,
    pm,
    BLOCK_P: tl.constexpr,
    CP: tl.constexpr,
    CQ: tl.constexpr,
    CQP: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    PRECISION: tl.constexpr,
    BRANCH_DOTS: tl.constexpr,
    SHIFT1: tl.constexpr,
    SHIFT2: tl.constexpr,
    SHIFT3: tl.constexpr,
):
    """Branches 1..3 and the 1x1 aggregation of all four (four K slices of one GEMM) + its bias."""
    # 16-bit operands: the four branches first, the four K slices of the aggregation GEMM
    # after them, so the accumulator (32 registers a thread) is not live while the taps are
    # in flight; the slices' weights are loaded up front, their latency hidden behind the
    # gathers. Each barrier fences one branch's 9 gathers + 9 weight rows from the next:
    # without them ptxas issues all 36 at once and spills (255 registers). FP32 operands
    # (BRANCH_DOTS) hold twice the registers per branch sum, more than the accumulator, so
    # there each branch's slice is multiplied as soon as it is done.
    cq = tl.arange(0, CQP)
    k = tl.arange(0, CP)
    wt = AGGR_W + cq[:, None] * CP + k[None, :]
    if BRANCH_DOTS:
        acc = tl.dot(s0, tl.load(wt).to(DOT_DTYPE), input_precision=PRECISION)
    else:
        w0 = tl.load(wt).to(DOT_DTYPE)
        w1 = tl.load(wt + CQP * CP).to(DOT_DTYPE)
        w2 = tl.load(wt + 2 * CQP * CP).to(DOT_DTYPE)
        w3 = tl.load(wt + 3 * CQP * CP).to(DOT_DTYPE)
    tl.debug_barrier()
    s1 = _lowres_branch(LOW, off1, oh1, ow1, DW_W, DW_B, n, hh, ww, H, W, pm, BLOCK_P, 1, CQ, CQP, SHIFT1).to(DOT_DTYPE)
    if BRANCH_DOTS:
        acc = tl.dot(s1, tl.load(wt + CQP * CP).to(DOT_DTYPE), acc, input_precision=PRECISION)
    tl.debug_barrier()
    s2 = _lowres_branch(LOW, off2, oh2, ow2, DW_W, DW_B, n, hh, ww, H, W, pm, BLOCK_P, 2, CQ, CQP, SHIFT2).to(DOT_DTYPE)
    if BRANCH_DOTS:
        acc = tl.dot(s2, tl.load(wt + 2 * CQP * CP).to(DOT_DTYPE), acc, input_precision=PRECISION)
    tl.debug_barrier()
    s3 = _lowres_branch(LOW, off3, oh3, ow3, DW_W, DW_B, n, hh, ww, H, W, pm, BLOCK_P, 3, CQ, CQP, SHIFT3).to(DOT_DTYPE)
    if BRANCH_DOTS:
        acc = tl.dot(s3, tl.load(wt + 3 * CQP * CP).to(DOT_DTYPE), acc, input_precision=PRECISION)
    else:
        acc = tl.dot(s0, w0, input_precision=PRECISION)
        acc = tl.dot(s1, w1, acc, input_precision=PRECISION)
        acc = tl.dot(s2, w2, acc, input_precision=PRECISION)
        acc = tl.dot(s3, w3, acc, input_precision=PRECISION)
    return acc + tl.load(AGGR_B + k).to(tl.float32)[None, :]


@triton.jit
def _modulate_store(
    acc,
    X,
    u_n,
    Y,
    U_OUT,
    base,
    p,
    pm,
    LN_W,
    LN_B,
    eps,
    C: tl.constexpr,
    CS: tl.constexpr,
    CP: tl.constexpr,
    LN_OUT: tl.constexpr,
):
    """y = GELU(a) * u + x, stored; u2 = LN2(y) stored when asked."""
    k = tl.arange(0, CP)
    offs, smask = nhwc_tile(p, pm, k, CS)
    x = tl.load(X + base + offs, mask=smask, other=0.0).to(tl.float32)
    u = tl.load(u_n + offs, mask=smask, other=0.0).to(tl.float32)
    y = gelu(acc) * u + x
    tl.store(Y + base + offs, y.to(Y.dtype.element_ty), mask=smask)
    if LN_OUT:
        u2 = layer_norm_rows(y, (k < C)[None, :], C, eps, LN_W, LN_B, k)
        tl.store(U_OUT + base + offs, u2.to(U_OUT.dtype.element_ty), mask=smask)


@triton.jit
def _safm_tail_kernel(
    X,
    U,
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
    DW_W,
    DW_B,
    AGGR_W,
    AGGR_B,
    LN_W,
    LN_B,
    Y,
    U_OUT,
    H,
    W,
    eps,
    C: tl.constexpr,  # channels (LayerNorm statistics run over these)
    CS: tl.constexpr,  # padded channel stride of X, U, Y, U_OUT
    CP: tl.constexpr,  # tile width: CS rounded up to a power of two (tl.dot N)
    CQ: tl.constexpr,  # channels per chunk
    CQP: tl.constexpr,  # chunk lanes: a power of two >= 16 (each branch is one tl.dot K slice)
    LN_OUT: tl.constexpr,  # write u2 = LN2(y) for CCM (paper SAFMN)
    BLOCK_P: tl.constexpr,  # pixels per program
    DOT_DTYPE: tl.constexpr,
    PRECISION: tl.constexpr,
    BRANCH_DOTS: tl.constexpr,  # FP32 operands: each branch's GEMM slice right after the branch
    SHIFT1: tl.constexpr,  # lane of channel 0 in each pooled map (LowRes.shifts)
    SHIFT2: tl.constexpr,
    SHIFT3: tl.constexpr,
):
    n, p, pm, hh, ww, base = pixel_tile(H, W, CS, BLOCK_P)
    u_n = U + base
    s0 = _full_res_branch(u_n, DW_W, DW_B, hh, ww, H, W, pm, BLOCK_P, CS, CQ, CQP, DOT_DTYPE)
    acc = _aggregate(
        s0, LOW, off1, oh1, ow1, off2, oh2, ow2, off3, oh3, ow3, DW_W, DW_B, AGGR_W, AGGR_B, n, hh, ww, H, W, pm,
        BLOCK_P, CP, CQ, CQP, DOT_DTYPE, PRECISION, BRANCH_DOTS, SHIFT1, SHIFT2, SHIFT3,
    )  # fmt: skip
    _modulate_store(acc, X, u_n, Y, U_OUT, base, p, pm, LN_W, LN_B, eps, C, CS, CP, LN_OUT)


def safm_tail(
    x: torch.Tensor,
    u: torch.Tensor,
    low: LowRes,
    packed: dict[str, torch.Tensor],
    c: int,
    *,
    ln_out: tuple[torch.Tensor, torch.Tensor, float] | None = None,
    fp32_precision: str = "tf32x3",
    config: tuning.Config | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """y = x + SAFM(u) from the pooled maps; returns (y, LN2(y) or None). Padded NHWC in and out.

    `packed` comes from `pack_safm`; ln_out is LN2's zero-padded (CP,) weight and bias and eps.
    """
    check_nhwc(x, c, _safm_tail_kernel, "safm_tail")
    check_nhwc(u, c, _safm_tail_kernel, "safm_tail")
    n, h, w, cs = x.shape
    cq = c // 4
    cp = pow2(cs, 16)
    if low.cq != cq or low.n != n or tuple(packed["aggr_w"].shape) != (4 * chunk_stride(cq), cp) or u.shape != x.shape:
        raise BadInput(f"safm_tail: weights or low-resolution maps do not match a {c}-channel input")
    if low.shifts != pool_shifts(c):
        raise BadInput(f"safm_tail: the low-resolution maps' lanes {low.shifts} are not pack_safm's {pool_shifts(c)}")
    y = torch.empty_like(x)
    u2 = torch.empty_like(x) if ln_out is not None else None
    consts = {
        "C": c,
        "CS": cs,
        "CP": cp,
        "CQ": cq,
        "CQP": chunk_stride(cq),
        "LN_OUT": ln_out is not None,
        **dot_constexprs(x, _safm_tail_kernel, fp32_precision),
        "BRANCH_DOTS": x.dtype == torch.float32,
        "SHIFT1": low.shifts[0],
        "SHIFT2": low.shifts[1],
        "SHIFT3": low.shifts[2],
    }
    (oh1, ow1), (oh2, ow2), (oh3, ow3) = low.sizes
    o1, o2, o3 = low.offsets
    ln_w, ln_b, eps = ln_out if ln_out is not None else (packed["aggr_b"], packed["aggr_b"], 1e-6)
    args = (x, u, low.buf, o1, oh1, ow1, o2, oh2, ow2, o3, oh3, ow3)
    args += (packed["dw_w"], packed["dw_b"], packed["aggr_w"], packed["aggr_b"], ln_w, ln_b)
    args += (y, u2 if u2 is not None else y, h, w, eps)
    launch_pixel_tiles(
        _safm_tail_kernel,
        ("safm_tail", x.dtype, c),
        (n, h, w),
        args,
        consts,
        SAFM_CONFIGS[tuning.compute_mode(x.dtype, consts["PRECISION"])],
        interpreter=SAFM_INTERPRETER,
        config=config,
    )
    return y, u2
