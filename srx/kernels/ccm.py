"""CCM with its LayerNorm prologue and GELU / residual epilogues in one kernel.

With u = LN2(x) (or u = x without LayerNorm), hidden width Hd:

    h[j, p]   = GELU(b1[j] + sum_{dy,dx,c} W1[j, c, dy, dx] * u[c, p + (dy, dx)])      (zero outside)
    y[k, p]   = b2[k] + sum_j W2[k, j] * h[j, p] + x[k, p] (+ skip[k, p])

The 3x3 conv is an implicit GEMM over the 9 taps; the hidden activation h (twice the
block's width: the largest tensor of the model) never leaves registers: it is computed
in HID_BLOCK-wide slices, each slice goes through GELU and is immediately multiplied
into the 1x1 conv's accumulator. u is rebuilt from x and the per-pixel LN statistics
as each tile is loaded, so LN2(x) is never stored either. The epilogue adds the residual,
optionally the model's long skip (last block of the paper SAFMN), and optionally writes
the statistics of y for the next block's LN1.
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
    interpreted,
    load_stats,
    pow2,
    stats_buffer,
    tile,
)

# GPU defaults chosen by reasoning, not measurement (no GPU here; bench/kernels_bench.py
# sweeps them): 64 pixels x 32 hidden FP32 accumulators plus a 64 x C_PAD output tile fit
# in registers at 4 warps for dim <= 64, and 16-channel K steps waste least of dim 36.
# The interpreter pays a fixed cost per tl op, so there one K step and one hidden slice
# cover everything (same kernel, fewer loop trips); tests also run the GPU blocks.
BLOCK_P = 64
HID_BLOCK = 32
K_BLOCK = 16


@triton.jit
def _ccm_kernel(
    X,
    STATS_IN,
    LN_W,
    LN_B,
    W1,
    B1,
    W2,
    B2,
    SKIP,
    Y,
    STATS_OUT,
    C,
    HID,
    H,
    W,
    eps,
    HAS_LN: tl.constexpr,  # paper SAFMN: u = LN2(x) from STATS_IN; NTIRE 2023: u = x
    HAS_SKIP: tl.constexpr,  # add the long feature skip in the last block instead of a separate pass
    STORE_STATS: tl.constexpr,  # write the next block's LN1 statistics while y is in registers
    BLOCK_P: tl.constexpr,  # pixels per program (the M of both GEMMs)
    C_PAD: tl.constexpr,  # dim rounded up to a power of two >= 16: the output tile width (tl.arange, tl.dot N)
    K_BLOCK: tl.constexpr,  # input channels per tl.dot step of the 3x3 conv: 16 wastes least of dim 36 (48)
    HID_BLOCK: tl.constexpr,  # hidden slice: bounds the live FP32 accumulator (BLOCK_P x HID_BLOCK)
    DOT_DTYPE: tl.constexpr,  # tl.float32 (IEEE, exact) for FP32 activations; FP16/BF16 use tensor cores
):
    n = tl.program_id(1)
    HW = H * W
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    pm = p < HW
    hh = p // W
    ww = p % W
    x_n = X + n.to(tl.int64) * C * HW
    stats_n = STATS_IN + n.to(tl.int64) * 2 * HW
    kc = tl.arange(0, K_BLOCK)
    ko = tl.arange(0, C_PAD)
    kom = ko < C
    jh = tl.arange(0, HID_BLOCK)

    out = tl.zeros([BLOCK_P, C_PAD], tl.float32)
    for j0 in range(0, HID, HID_BLOCK):
        j = j0 + jh
        jm = j < HID
        acc = tl.zeros([BLOCK_P, HID_BLOCK], tl.float32)
        for tap in tl.static_range(9):
            r = hh + (tap // 3 - 1)
            s = ww + (tap % 3 - 1)
            valid = pm & (r >= 0) & (r < H) & (s >= 0) & (s < W)
            nb = r * W + s
            if HAS_LN:
                m_t, r_t = load_stats(stats_n, nb, valid, HW)
            for c0 in range(0, C, K_BLOCK):
                c = c0 + kc
                cm = c < C
                amask = valid[:, None] & cm[None, :]
                a = tl.load(x_n + c[None, :] * HW + nb[:, None], mask=amask, other=0.0).to(tl.float32)
                if HAS_LN:
                    lw = tl.load(LN_W + c, mask=cm, other=0.0).to(tl.float32)
                    lb = tl.load(LN_B + c, mask=cm, other=0.0).to(tl.float32)
                    a = (a - m_t[:, None]) * r_t[:, None] * lw[None, :] + lb[None, :]
                    a = tl.where(amask, a, 0.0)  # the conv zero-pads u, not x
                w1 = tl.load(W1 + (tap * C + c)[:, None] * HID + j[None, :], mask=cm[:, None] & jm[None, :], other=0.0)
                acc = tl.dot(a.to(DOT_DTYPE), w1.to(DOT_DTYPE), acc, input_precision="ieee")
        # Padded hidden columns have zero bias and zero W2 rows, so they add nothing.
        hid = gelu(acc + tl.load(B1 + j, mask=jm, other=0.0).to(tl.float32)[None, :])
        w2 = tl.load(W2 + j[:, None] * C + ko[None, :], mask=jm[:, None] & kom[None, :], other=0.0)
        out = tl.dot(hid.to(DOT_DTYPE), w2.to(DOT_DTYPE), out, input_precision="ieee")

    mask = pm[:, None] & kom[None, :]
    offs = ko[None, :] * HW + p[:, None]
    y = out + tl.load(B2 + ko, mask=kom, other=0.0).to(tl.float32)[None, :]
    y += tl.load(x_n + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_SKIP:
        y += tl.load(SKIP + n.to(tl.int64) * C * HW + offs, mask=mask, other=0.0).to(tl.float32)
    if STORE_STATS:
        mean, rstd = channel_stats(y, mask, C, eps)
        so = STATS_OUT + n.to(tl.int64) * 2 * HW
        tl.store(so + p, mean, mask=pm)
        tl.store(so + HW + p, rstd, mask=pm)
    tl.store(Y + n.to(tl.int64) * C * HW + offs, y.to(Y.dtype.element_ty), mask=mask)


def ccm(
    x: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor,
    w2: torch.Tensor,
    b2: torch.Tensor,
    *,
    stats: torch.Tensor | None = None,
    ln_weight: torch.Tensor | None = None,
    ln_bias: torch.Tensor | None = None,
    skip: torch.Tensor | None = None,
    want_stats: bool = False,
    eps: float = 1e-6,
    block_p: int | None = None,
    hid_block: int | None = None,
    k_block: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """y = x + CCM(u) (+ skip), u = LN(x) from `stats` when given, else u = x.

    w1 (9, C, Hd): the 3x3 weight as [tap, c_in, c_out]; w2 (Hd, C): the 1x1 weight
    transposed; b1 (Hd,), b2 (C,). Returns (y, statistics of y or None).
    block_p / hid_block / k_block override the tile sizes (powers of two >= 16).
    """
    x = check_input(x, _ccm_kernel, "ccm")
    n, c, h, w = x.shape
    hid = w1.shape[-1]
    if tuple(w1.shape) != (9, c, hid) or tuple(w2.shape) != (hid, c) or b1.numel() != hid or b2.numel() != c:
        raise BadInput(f"ccm: weights do not match a {c}-channel input (w1 (9, C, Hd), w2 (Hd, C))")
    if skip is not None and skip.shape != x.shape:
        raise BadInput(f"ccm: skip has shape {tuple(skip.shape)}, expected {tuple(x.shape)}")
    c_pad = pow2(c, MIN_DOT)
    if interpreted(_ccm_kernel):
        hid_block = hid_block or pow2(hid, MIN_DOT)
        k_block = k_block or c_pad
    y = torch.empty_like(x)
    stats_out = stats_buffer(x) if want_stats else None
    has_ln = stats is not None
    block_p = block_p or tile(BLOCK_P, _ccm_kernel)
    grid = (triton.cdiv(h * w, block_p), n)
    _ccm_kernel[grid](
        x,
        stats if has_ln else x,
        ln_weight if has_ln else x,
        ln_bias if has_ln else x,
        w1,
        b1,
        w2,
        b2,
        skip.contiguous() if skip is not None else x,
        y,
        stats_out if want_stats else x,
        c,
        hid,
        h,
        w,
        eps,
        HAS_LN=has_ln,
        HAS_SKIP=skip is not None,
        STORE_STATS=want_stats,
        BLOCK_P=block_p,
        C_PAD=c_pad,
        K_BLOCK=pow2(k_block or K_BLOCK, MIN_DOT),
        HID_BLOCK=pow2(hid_block or HID_BLOCK, MIN_DOT),
        DOT_DTYPE=dot_dtype(x, _ccm_kernel),
    )
    return y, stats_out
