"""CCM with its residual, the long skip and the next block's LayerNorm in one kernel.

With u = LN2(x) (stored by safm_tail; u = x without LayerNorm) and hidden width Hd:

    h[p, j] = GELU(b1[j] + sum_{dy,dx,c} W1[j, c, dy, dx] * u[p + (dy - 1, dx - 1), c])   (zero outside)
    y[p, k] = b2[k] + sum_j W2[k, j] * h[p, j] + x[p, k]  (+ skip[p, k])
    u'      = LN1'(y)  (the next block's first LayerNorm), when asked

The 3x3 conv is one implicit GEMM (srx.kernels.conv.conv3x3_acc: K = 3 rows x 3 * CS
contiguous values, pipelined asynchronous loads, tensor cores) with the whole hidden
width in one tile (two power-of-two pieces, 72 -> 64 + 16); the hidden activation, the
largest tensor of the model, never leaves the chip: GELU in registers, then the 1x1
conv as a second GEMM, then the residual and the next LayerNorm as the epilogue.
u is read already normalised, so nothing is normalised per tap.
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
    layer_norm_rows_affine,
    nhwc_tile,
    pixel_tile,
    pow2,
    split_width,
)
from srx.kernels.conv import conv3x3_acc, k_rows, k_step, pack_conv3x3

# Candidates per compute mode (tuning.compute_mode), default first. 128 pixels x (64 + 16)
# hidden FP32 accumulators over 8 warps is 40 registers a thread, leaving room for the
# [128, 64] epilogue tiles; 3 stages keep two K steps of asynchronous copies in flight behind
# the current tl.dot. Each candidate compiles for sm_90 without spills at 320x180 and
# 1280x720 (bench/kernels_sm90.py, Triton 3.6 and 3.9); wider models take 64-pixel tiles.
CCM_CONFIGS = {
    "16bit": (tuning.Config(128, 8, 3), tuning.Config(64, 4, 3), tuning.Config(128, 4, 3), tuning.Config(256, 8, 2)),
    "tf32x3": (tuning.Config(128, 8, 3), tuning.Config(64, 4, 3)),
    "tf32": (tuning.Config(128, 8, 3), tuning.Config(64, 4, 3), tuning.Config(128, 4, 3)),
    # CUDA-core multiply-add GEMMs hold both operands in registers: hidden slices of 16.
    "ieee": (tuning.Config(64, 4, 1), tuning.Config(128, 8, 1), tuning.Config(128, 8, 3)),
}
WIDE_CONFIGS = (tuning.Config(64, 8, 3), tuning.Config(64, 4, 2))
IEEE_HID_SLICE = 16


def hidden_split(hidden: int) -> tuple[int, int]:
    return split_width(hidden)


def pack_ccm(conv1: torch.nn.Conv2d, conv2: torch.nn.Conv2d) -> dict[str, torch.Tensor]:
    """The two convolutions as the kernel's zero-padded GEMM operands."""
    hid, c = conv1.weight.shape[:2]
    ha, hb = hidden_split(hid)
    cp = pow2(channel_stride(c), 16)
    w1, b1 = pack_conv3x3(conv1.weight, conv1.bias, ha + hb)
    w2 = conv2.weight.new_zeros((ha + hb, cp))
    w2[:hid, :c] = conv2.weight.detach().reshape(c, hid).t()
    b2 = conv2.weight.new_zeros(cp)
    if conv2.bias is not None:
        b2[:c] = conv2.bias.detach()
    return {"w1": w1, "b1": b1, "w2": w2.contiguous(), "b2": b2}


@triton.jit
def _w2(W2, ja, jb, c, HID, CP: tl.constexpr, DOT_DTYPE: tl.constexpr):
    """The 1x1 conv's weight rows for the two hidden pieces (the second is unused when HB = 0)."""
    w2a = tl.load(W2 + ja[:, None] * CP + c[None, :]).to(DOT_DTYPE)
    w2b = tl.load(W2 + jb[:, None] * CP + c[None, :], mask=(jb < HID)[:, None], other=0.0).to(DOT_DTYPE)
    return w2a, w2b


@triton.jit
def _epilogue_operands(X, SKIP, B2, LN_W, LN_B, offs, smask, c, HAS_SKIP: tl.constexpr, LN_OUT: tl.constexpr):
    """The residual, the skip, b2 and the next LayerNorm's weights (stand-ins where unused)."""
    res = tl.load(X + offs, mask=smask, other=0.0)
    skip = res
    if HAS_SKIP:
        skip = tl.load(SKIP + offs, mask=smask, other=0.0)
    b2 = tl.load(B2 + c)
    ln_w = b2
    ln_b = b2
    if LN_OUT:
        ln_w = tl.load(LN_W + c)
        ln_b = tl.load(LN_B + c)
    return res, skip, b2, ln_w, ln_b


@triton.jit
def _hidden_on_tensor_cores(
    X,
    U_n,
    W1,
    B1,
    W2,
    B2,
    SKIP,
    LN_W,
    LN_B,
    tile,
    smask,
    p,
    pm,
    ww,
    H,
    W,
    c,
    CS: tl.constexpr,
    CP: tl.constexpr,
    KROWS: tl.constexpr,
    KB: tl.constexpr,
    HA: tl.constexpr,
    HB: tl.constexpr,
    HAS_SKIP: tl.constexpr,
    LN_OUT: tl.constexpr,
    BLOCK_P: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    PRECISION: tl.constexpr,
    NUM_STAGES: tl.constexpr,
    EARLY: tl.constexpr,
):
    """The whole hidden width in one pass (3x3 GEMM, GELU, 1x1 GEMM) and the epilogue's operands."""
    # b1 starts the 3x3 conv's accumulators (b1 + sum instead of sum + b1: FP32 rounding
    # order only), so no bias load waits after the K loop.
    ja = tl.arange(0, HA)
    jb = HA + tl.arange(0, HB + 16 * (HB == 0))
    acc_a = tl.zeros([BLOCK_P, HA], tl.float32) + tl.load(B1 + ja).to(tl.float32)[None, :]
    if HB > 0:
        acc_b = tl.zeros([BLOCK_P, HB], tl.float32) + tl.load(B1 + jb).to(tl.float32)[None, :]
    else:
        acc_b = tl.zeros([BLOCK_P, 16], tl.float32)
    if EARLY:
        w2a, w2b = _w2(W2, ja, jb, c, HA + HB, CP, DOT_DTYPE)
    acc_a, acc_b = conv3x3_acc(
        U_n, p, pm, ww, H, W, W1, 0, acc_a, acc_b, HA + HB, CS, KROWS, KB, HA, HB, DOT_DTYPE, PRECISION, NUM_STAGES,
    )  # fmt: skip
    if EARLY:
        res, skip, b2, ln_w, ln_b = _epilogue_operands(X, SKIP, B2, LN_W, LN_B, tile, smask, c, HAS_SKIP, LN_OUT)
    else:
        w2a, w2b = _w2(W2, ja, jb, c, HA + HB, CP, DOT_DTYPE)
    # Padded hidden columns have zero bias and zero W2 rows, so they add nothing.
    out = tl.dot(gelu(acc_a).to(DOT_DTYPE), w2a, input_precision=PRECISION)
    if HB > 0:
        out = tl.dot(gelu(acc_b).to(DOT_DTYPE), w2b, out, input_precision=PRECISION)
    if not EARLY:
        res, skip, b2, ln_w, ln_b = _epilogue_operands(X, SKIP, B2, LN_W, LN_B, tile, smask, c, HAS_SKIP, LN_OUT)
    return out, res, skip, b2, ln_w, ln_b


@triton.jit
def _hidden_in_slices(
    U_n,
    W1,
    B1,
    W2,
    p,
    pm,
    ww,
    H,
    W,
    c,
    CS: tl.constexpr,
    CP: tl.constexpr,
    KROWS: tl.constexpr,
    KB: tl.constexpr,
    HID: tl.constexpr,
    HID_SLICE: tl.constexpr,
    BLOCK_P: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    PRECISION: tl.constexpr,
    NUM_STAGES: tl.constexpr,
):
    """GELU(3x3 GEMM) then the 1x1 GEMM, HID_SLICE hidden channels at a time (exact FP32 on the
    CUDA cores: a multiply-add GEMM holds both operands in registers). Each slice's products
    are computed once; only u is re-read."""
    out = tl.zeros([BLOCK_P, CP], tl.float32)
    js = tl.arange(0, HID_SLICE)
    for j0 in range(0, HID, HID_SLICE):
        acc = tl.zeros([BLOCK_P, HID_SLICE], tl.float32)
        acc, _ = conv3x3_acc(
            U_n, p, pm, ww, H, W, W1, j0, acc, acc, HID, CS, KROWS, KB, HID_SLICE, 0, DOT_DTYPE, PRECISION,
            NUM_STAGES,
        )  # fmt: skip
        hid = gelu(acc + tl.load(B1 + j0 + js).to(tl.float32)[None, :])
        w2 = tl.load(W2 + (j0 + js)[:, None] * CP + c[None, :]).to(DOT_DTYPE)
        out = tl.dot(hid.to(DOT_DTYPE), w2, out, input_precision=PRECISION)
    return out


@triton.jit
def _residual_store(
    out,
    res,
    skip,
    b2,
    ln_w,
    ln_b,
    Y,
    U_OUT,
    base,
    offs,
    smask,
    c,
    eps,
    C: tl.constexpr,
    HAS_SKIP: tl.constexpr,
    LN_OUT: tl.constexpr,
):
    """y = out + b2 + x (+ skip), stored; u' = LN1'(y) stored when asked."""
    y = out + b2.to(tl.float32)[None, :]
    y += res.to(tl.float32)
    if HAS_SKIP:
        y += skip.to(tl.float32)
    tl.store(Y + base + offs, y.to(Y.dtype.element_ty), mask=smask)
    if LN_OUT:
        u = layer_norm_rows_affine(y, (c < C)[None, :], C, eps, ln_w, ln_b)
        tl.store(U_OUT + base + offs, u.to(U_OUT.dtype.element_ty), mask=smask)


@triton.jit
def _ccm_kernel(
    X,
    U,
    W1,
    B1,
    W2,
    B2,
    SKIP,
    LN_W,
    LN_B,
    Y,
    U_OUT,
    H,
    W,
    eps,
    C: tl.constexpr,  # channels (the model's dim): LayerNorm statistics run over these
    CS: tl.constexpr,  # padded channel stride of every activation (a multiple of 8)
    CP: tl.constexpr,  # output tile width: CS rounded up to a power of two
    KROWS: tl.constexpr,  # packed K rows per kernel row of the 3x3 conv
    KB: tl.constexpr,  # K per tl.dot step
    HA: tl.constexpr,  # hidden width covered by two power-of-two pieces HA + HB (72 -> 64 + 16)
    HB: tl.constexpr,
    HAS_SKIP: tl.constexpr,  # add the model's long skip (the paper SAFMN's last block)
    LN_OUT: tl.constexpr,  # write u' = LN1'(y) for the next block
    HID_SLICE: tl.constexpr,  # 0: whole hidden width at once (tensor cores); else slices of it (exact FP32)
    BLOCK_P: tl.constexpr,  # pixels per program (the M of both GEMMs)
    DOT_DTYPE: tl.constexpr,  # GEMM operand type
    PRECISION: tl.constexpr,  # tl.dot input_precision for FP32 (ieee, tf32x3, tf32)
    NUM_STAGES: tl.constexpr,  # software pipelining depth of the 3x3 conv's K loop
    EARLY: tl.constexpr,  # issue the 1x1 conv's and the epilogue's operands early (16-bit; see ccm)
):
    _n, p, pm, _hh, _ww, base = pixel_tile(H, W, CS, BLOCK_P)
    # The column as p % W (conv3x3_acc derives the rows), as before pixel_tile: its p - hh * W
    # moves ccm's registers by up to 11, and p % W in pixel_tile moves conv_tail's by up to 19
    # (one CTA per SM fewer in tf32x3): bench/results/2026-12-06-sm90-prologue.
    ww = p % W
    c = tl.arange(0, CP)
    offs, smask = nhwc_tile(p, pm, c, CS)
    if HID_SLICE == 0:
        out, res, skip, b2, ln_w, ln_b = _hidden_on_tensor_cores(
            X, U + base, W1, B1, W2, B2, SKIP, LN_W, LN_B, base + offs, smask, p, pm, ww, H, W, c, CS, CP, KROWS, KB,
            HA, HB, HAS_SKIP, LN_OUT, BLOCK_P, DOT_DTYPE, PRECISION, NUM_STAGES, EARLY,
        )  # fmt: skip
    else:
        out = _hidden_in_slices(
            U + base, W1, B1, W2, p, pm, ww, H, W, c, CS, CP, KROWS, KB, HA + HB, HID_SLICE, BLOCK_P, DOT_DTYPE,
            PRECISION, NUM_STAGES,
        )  # fmt: skip
        res, skip, b2, ln_w, ln_b = _epilogue_operands(X, SKIP, B2, LN_W, LN_B, base + offs, smask, c, HAS_SKIP, LN_OUT)
    _residual_store(out, res, skip, b2, ln_w, ln_b, Y, U_OUT, base, offs, smask, c, eps, C, HAS_SKIP, LN_OUT)


def ccm(
    x: torch.Tensor,
    u: torch.Tensor,
    packed: dict[str, torch.Tensor],
    c: int,
    *,
    skip: torch.Tensor | None = None,
    ln_out: tuple[torch.Tensor, torch.Tensor, float] | None = None,
    fp32_precision: str = "tf32x3",
    config: tuning.Config | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """y = x + CCM(u) (+ skip) on padded NHWC tensors; returns (y, LN(y) or None).

    u is the CCM input (LN2(x), or x itself without LayerNorm); `packed` comes from
    `pack_ccm`; ln_out is the next LayerNorm's zero-padded (CP,) weight and bias and eps.
    `config` forces a launch configuration (tests, sweeps) instead of the tuned one.
    """
    check_nhwc(x, c, _ccm_kernel, "ccm")
    check_nhwc(u, c, _ccm_kernel, "ccm")
    n, h, w, cs = x.shape
    hid_w = packed["w1"].shape[1]
    ha, hb = hidden_split(hid_w)
    if (ha + hb) != hid_w or packed["w1"].shape[0] != 3 * k_rows(cs) or packed["w2"].shape != (hid_w, pow2(cs, 16)):
        raise BadInput(f"ccm: packed weights do not match a {c}-channel input (use srx.kernels.ccm.pack_ccm)")
    if u.shape != x.shape or (skip is not None and skip.shape != x.shape):
        raise BadInput(f"ccm: u and skip must have x's shape {tuple(x.shape)}")
    y = torch.empty_like(x)
    u_out = torch.empty_like(x) if ln_out is not None else None
    consts = {
        "C": c,
        "CS": cs,
        "CP": pow2(cs, 16),
        "KROWS": k_rows(cs),
        "KB": k_step(cs, x.element_size()),
        "HA": ha,
        "HB": hb,
        "HAS_SKIP": skip is not None,
        "LN_OUT": ln_out is not None,
        **dot_constexprs(x, _ccm_kernel, fp32_precision),
    }
    # 16-bit: W2 is loaded before the K loop (it waits in shared memory) and the residual, skip,
    # b2 and the LayerNorm weights as the loop ends, their latency overlapping GELU and the 1x1
    # GEMM instead of following them (two L2 round trips a tile). FP32 operands are twice as
    # wide and the TF32 products split them: there the same order costs 70-110 registers a
    # thread (tf32: 128 -> 200, one CTA per SM instead of two), so they keep the late loads.
    consts["EARLY"] = x.dtype != torch.float32
    consts["HID_SLICE"] = IEEE_HID_SLICE if tuning.compute_mode(x.dtype, consts["PRECISION"]) == "ieee" else 0
    ln_w, ln_b, eps = ln_out if ln_out is not None else (packed["b2"], packed["b2"], 1e-6)
    args = (x, u, packed["w1"], packed["b1"], packed["w2"], packed["b2"], skip if skip is not None else x, ln_w, ln_b)
    args += (y, u_out if u_out is not None else y, h, w, eps)
    launch_pixel_tiles(
        _ccm_kernel,
        ("ccm", x.dtype, c, hid_w),
        (n, h, w),
        args,
        consts,
        candidate_configs(x.dtype, consts["PRECISION"], hid_w),
        config=config,
    )
    return y, u_out


def candidate_configs(dtype: torch.dtype, precision: str, hidden_width: int) -> tuple[tuning.Config, ...]:
    """The launch configurations `ccm` measures (default first) for this dtype, mode and width."""
    mode = tuning.compute_mode(dtype, precision)
    return WIDE_CONFIGS if hidden_width >= 256 and mode != "ieee" else CCM_CONFIGS[mode]
