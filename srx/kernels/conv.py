"""3x3 convolutions as implicit GEMMs on the tensor cores: the shared K loop, the first
convolution (image -> features, + the first LayerNorm) and the last one (features ->
image, with PixelShuffle and the image skip in its epilogue).

On the padded NHWC layout (srx.kernels._common) the K axis of a 3x3 convolution over
C channels is 3 rows (dy) x 3 * CS consecutive values: for output pixel (h, w) and row dy
the three horizontal taps u[h + dy, w - 1 .. w + 1, :] are one contiguous run of 3 * CS
values starting at pixel (h + dy, w - 1). So per row dy, A[p, k] = u_flat[(p + dy * W - 1)
* CS + k], k < 3 * CS: one strided 2D load per K step, 16-byte vectors, no gather. The
taps that fall outside the image (zero padding) are masked: rows outside [0, H), the
first CS values at w = 0 (dx = -1), the last CS at w = W - 1 (dx = +1). The weight is
packed to match (`pack_conv3x3`): row dy * KROWS + dx * CS + c holds W[:, c, dy, dx],
zero for padding channels and for k >= 3 * CS, so weight loads need no mask.

    out[p, o] = bias[o] + sum_{dy, dx, c} W[o, c, dy, dx] * u[p + (dy - 1, dx - 1), c]
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from srx.errors import BadInput
from srx.kernels import tuning
from srx.kernels._common import (
    channel_stride,
    check_device,
    check_nhwc,
    dot_constexprs,
    launch_pixel_tiles,
    layer_norm_rows,
    nhwc_tile,
    pixel_tile,
    pow2,
    round_up,
    split_width,
)

# K rows per kernel row dy: 3 * CS rounded up to whole K steps of 32 (SAFMN's dim 36: 120 -> 128).
K_ALIGN = 32


def k_rows(cs: int) -> int:
    return round_up(3 * cs, K_ALIGN)


def k_step(cs: int, elem_bytes: int) -> int:
    """K per tl.dot step: 128 bytes of each A row (64 FP16 or 32 FP32 values: the same copy
    sizes and, for FP32, registers that the sm_90 compile shows do not spill), halved until
    it divides the packed row (KROWS is a multiple of 32)."""
    kb = 128 // elem_bytes
    while k_rows(cs) % kb:
        kb //= 2
    return kb


def pack_conv3x3(weight: torch.Tensor, bias: torch.Tensor | None, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(O, C, 3, 3) conv weight -> (3 * KROWS, width) GEMM operand; bias -> (width,). Zero-padded."""
    o, c = weight.shape[:2]
    cs = channel_stride(c)
    kr = k_rows(cs)
    packed = weight.new_zeros((3, kr, width))
    w = weight.detach().permute(2, 3, 1, 0)  # (dy, dx, c, o)
    for dx in range(3):
        packed[:, dx * cs : dx * cs + c, :o] = w[:, dx]
    b = weight.new_zeros(width)
    if bias is not None:
        b[:o] = bias.detach()
    return packed.reshape(3 * kr, width).contiguous(), b


@triton.jit
def conv3x3_acc(
    U_n,
    p,
    pm,
    ww,
    H,
    W,
    WT,
    n0,
    acc_a,
    acc_b,
    NW: tl.constexpr,  # row length of the packed weight WT (all output columns)
    CS: tl.constexpr,  # channel stride of U (a multiple of 8): K runs are 16-byte aligned
    KROWS: tl.constexpr,  # packed K rows per kernel row dy (3 * CS rounded up to K_ALIGN)
    KB: tl.constexpr,  # K per tl.dot step (divides KROWS)
    NA: tl.constexpr,  # output columns of acc_a (a power of two >= 16)
    NB: tl.constexpr,  # output columns of acc_b (0: none): NA + NB covers the output with little waste
    DOT_DTYPE: tl.constexpr,  # GEMM operand type (FP16/BF16 tensor cores, or FP32)
    PRECISION: tl.constexpr,  # tl.dot input_precision for FP32 operands (ieee, tf32x3, tf32)
    NUM_STAGES: tl.constexpr,  # software pipelining depth of the K loop (asynchronous copies in flight)
):
    """acc_a (+ acc_b) += output columns n0.. of the 3x3 convolution of the tile's pixels.

    One K loop over 3 x KROWS; acc_a takes columns n0..n0+NA, acc_b the next NB.
    """
    k = tl.arange(0, KB)
    na = tl.arange(0, NA)
    first = ww > 0
    last = ww < W - 1
    hh = p // W
    for it in tl.range(0, 3 * (KROWS // KB), num_stages=NUM_STAGES):
        dy = it // (KROWS // KB) - 1
        kk = (it % (KROWS // KB)) * KB + k
        seg = kk // CS  # 0, 1, 2: dx = -1, 0, +1
        row = hh + dy
        rows_ok = pm & (row >= 0) & (row < H)
        amask = (
            rows_ok[:, None]
            & (kk < 3 * CS)[None, :]
            & ((seg != 0)[None, :] | first[:, None])
            & ((seg != 2)[None, :] | last[:, None])
        )
        a = tl.load(U_n + (p + dy * W - 1)[:, None] * CS + kk[None, :], mask=amask, other=0.0).to(DOT_DTYPE)
        wrow = it * KB + k
        wa = tl.load(WT + wrow[:, None] * NW + n0 + na[None, :]).to(DOT_DTYPE)
        acc_a = tl.dot(a, wa, acc_a, input_precision=PRECISION)
        if NB > 0:
            nb = tl.arange(0, NB)
            wb = tl.load(WT + wrow[:, None] * NW + n0 + NA + nb[None, :]).to(DOT_DTYPE)
            acc_b = tl.dot(a, wb, acc_b, input_precision=PRECISION)
    return acc_a, acc_b


# --- first convolution: image (NCHW, 3 channels) -> features (padded NHWC) [+ LN1] --------

HEAD_K = 32  # 3 channels x 9 taps = 27, padded to one K step

# Candidates per compute mode (tuning.compute_mode), default first; each compiles for sm_90
# without spills at 320x180 and 1280x720 (bench/kernels_sm90.py, Triton 3.6 and 3.9).
HEAD_CONFIGS = {
    "16bit": (tuning.Config(128, 4), tuning.Config(64, 4), tuning.Config(256, 8)),
    "tf32x3": (tuning.Config(128, 4), tuning.Config(64, 4), tuning.Config(256, 8)),
    "tf32": (tuning.Config(128, 4), tuning.Config(64, 4), tuning.Config(256, 8)),
    "ieee": (tuning.Config(64, 8), tuning.Config(128, 4), tuning.Config(32, 4)),
}


def pack_head(weight: torch.Tensor, bias: torch.Tensor, cp: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, 3, 3, 3) -> (32, CP): row ci * 9 + tap; bias -> (CP,). Zero-padded."""
    c, ci = weight.shape[:2]
    packed = weight.new_zeros((HEAD_K, cp))
    packed[: ci * 9, :c] = weight.detach().reshape(c, ci * 9).t()
    b = weight.new_zeros(cp)
    b[:c] = bias.detach()
    return packed.contiguous(), b


@triton.jit
def _conv_head_kernel(
    IMG,
    WT,
    BIAS,
    LN_W,
    LN_B,
    Y,
    U,
    H,
    W,
    eps,
    C: tl.constexpr,  # feature channels (the model's dim)
    CS: tl.constexpr,  # their padded stride in Y and U
    CP: tl.constexpr,  # tile width: CS rounded up to a power of two (tl.arange, tl.dot N)
    HAS_LN: tl.constexpr,  # paper SAFMN: also write U = LN1(Y) for the first block
    BLOCK_P: tl.constexpr,  # pixels per program (the GEMM's M)
    DOT_DTYPE: tl.constexpr,
    PRECISION: tl.constexpr,
):
    n, p, pm, hh, ww, base = pixel_tile(H, W, CS, BLOCK_P)
    HW = H * W
    # K = input channel x tap: a gather from the 3-channel image (tiny next to the output).
    k = tl.arange(0, 32)
    ci = k // 9
    tap = k - ci * 9
    r = hh[:, None] + (tap // 3 - 1)[None, :]
    s = ww[:, None] + (tap % 3 - 1)[None, :]
    amask = pm[:, None] & (k < 27)[None, :] & (r >= 0) & (r < H) & (s >= 0) & (s < W)
    img_n = IMG + n.to(tl.int64) * 3 * HW
    a = tl.load(img_n + ci[None, :] * HW + r * W + s, mask=amask, other=0.0).to(DOT_DTYPE)
    c = tl.arange(0, CP)
    wt = tl.load(WT + k[:, None] * CP + c[None, :]).to(DOT_DTYPE)
    y = tl.dot(a, wt, input_precision=PRECISION) + tl.load(BIAS + c).to(tl.float32)[None, :]
    offs, smask = nhwc_tile(p, pm, c, CS)
    tl.store(Y + base + offs, y.to(Y.dtype.element_ty), mask=smask)
    if HAS_LN:
        u = layer_norm_rows(y, (c < C)[None, :], C, eps, LN_W, LN_B, c)
        tl.store(U + base + offs, u.to(U.dtype.element_ty), mask=smask)


def conv_head(
    img: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    c: int,
    *,
    ln: tuple[torch.Tensor, torch.Tensor, float] | None = None,
    fp32_precision: str = "tf32x3",
    config: tuning.Config | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first 3x3 conv of an NCHW image into the padded NHWC layout, and LN1 of it.

    weight / bias: `pack_head` output (32, CP) / (CP,); ln: zero-padded (CP,) weight and
    bias and eps, or None. Returns (features, LN1(features) or None).
    """
    check_device(img, _conv_head_kernel, "conv_head")
    if img.dim() != 4 or img.shape[1] != 3:
        raise BadInput(f"conv_head: expected an (N, 3, H, W) image, got shape {tuple(img.shape)}")
    img = img.contiguous()
    n, _, h, w = img.shape
    cs = channel_stride(c)
    cp = pow2(cs, 16)
    y = img.new_empty((n, h, w, cs))
    u = torch.empty_like(y) if ln is not None else None
    consts = {
        "C": c,
        "CS": cs,
        "CP": cp,
        "HAS_LN": ln is not None,
        **dot_constexprs(img, _conv_head_kernel, fp32_precision),
    }
    eps = ln[2] if ln else 1e-6
    args = (img, weight, bias, ln[0] if ln else bias, ln[1] if ln else bias, y, u if u is not None else y, h, w, eps)
    launch_pixel_tiles(
        _conv_head_kernel,
        ("conv_head", img.dtype, c, ln is not None),
        (n, h, w),
        args,
        consts,
        HEAD_CONFIGS[tuning.compute_mode(img.dtype, consts["PRECISION"])],
        config=config,
    )
    return y, u


# --- last convolution: features -> conv3x3 -> PixelShuffle (-> + image skip) ---------------

TAIL_CONFIGS = {
    "16bit": (tuning.Config(128, 8, 3), tuning.Config(64, 4, 3), tuning.Config(128, 4, 2)),
    "tf32x3": (tuning.Config(128, 8, 3), tuning.Config(64, 4, 3)),
    "tf32": (tuning.Config(128, 8, 3), tuning.Config(64, 4, 3), tuning.Config(128, 4, 2)),
    "ieee": (tuning.Config(128, 8, 3), tuning.Config(64, 8, 1)),
}


def tail_width(out_channels: int) -> tuple[int, int]:
    return split_width(out_channels)


@triton.jit
def _conv_tail_kernel(
    X,
    WT,
    BIAS,
    ADD,
    OUT,
    H,
    W,
    CS: tl.constexpr,  # channel stride of X
    KROWS: tl.constexpr,  # packed K rows per kernel row (conv3x3_acc)
    KB: tl.constexpr,  # K per tl.dot step
    OC: tl.constexpr,  # conv output channels: 3 * scale^2
    NA: tl.constexpr,  # OC covered by NA + NB tl.dot columns (split_width)
    NB: tl.constexpr,
    SCALE: tl.constexpr,  # PixelShuffle factor: channel o -> (o // s^2, row (o % s^2) // s, column o % s)
    HAS_ADD: tl.constexpr,  # add an NCHW tensor of the output's shape (NTIRE 2023's bilinear image skip)
    BLOCK_P: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    PRECISION: tl.constexpr,
    NUM_STAGES: tl.constexpr,
):
    n, p, pm, hh, ww, base = pixel_tile(H, W, CS, BLOCK_P)
    HW = H * W
    acc_a = tl.zeros([BLOCK_P, NA], tl.float32)
    acc_b = tl.zeros([BLOCK_P, NB + 16 * (NB == 0)], tl.float32)
    acc_a, acc_b = conv3x3_acc(
        X + base, p, pm, ww, H, W, WT, 0, acc_a, acc_b, NA + NB, CS, KROWS, KB, NA, NB, DOT_DTYPE, PRECISION, NUM_STAGES
    )
    out_n = OUT + n.to(tl.int64) * 3 * HW * SCALE * SCALE
    add_n = ADD + n.to(tl.int64) * 3 * HW * SCALE * SCALE
    _shuffle_store(acc_a, BIAS, out_n, add_n, hh, ww, pm, H, W, 0, NA, OC, SCALE, HAS_ADD)
    if NB > 0:
        _shuffle_store(acc_b, BIAS, out_n, add_n, hh, ww, pm, H, W, NA, NB, OC, SCALE, HAS_ADD)


@triton.jit
def _shuffle_store(
    acc,
    BIAS,
    out_n,
    add_n,
    hh,
    ww,
    pm,
    H,
    W,
    O0: tl.constexpr,  # first conv channel of this accumulator
    NO: tl.constexpr,  # its width
    OC: tl.constexpr,  # conv channels in all (3 * SCALE^2): the rest is padding
    SCALE: tl.constexpr,
    HAS_ADD: tl.constexpr,
):
    """Store conv channels O0..O0+NO of the tile at their PixelShuffle positions (NCHW)."""
    o = O0 + tl.arange(0, NO)
    y = acc + tl.load(BIAS + o).to(tl.float32)[None, :]
    ch = o // (SCALE * SCALE)
    i = (o % (SCALE * SCALE)) // SCALE
    j = o % SCALE
    sw = W * SCALE
    offs = (ch[None, :] * (H * SCALE) + hh[:, None] * SCALE + i[None, :]) * sw + ww[:, None] * SCALE + j[None, :]
    mask = pm[:, None] & (o < OC)[None, :]
    if HAS_ADD:
        y += tl.load(add_n + offs, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_n + offs, y.to(out_n.dtype.element_ty), mask=mask)


def conv_tail(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    c: int,
    scale: int,
    *,
    add: torch.Tensor | None = None,
    fp32_precision: str = "tf32x3",
    config: tuning.Config | None = None,
) -> torch.Tensor:
    """PixelShuffle(conv3x3(x)) (+ add): padded NHWC features -> an (N, 3, sH, sW) image.

    weight / bias: `pack_conv3x3(w, b, sum(tail_width(3 * scale**2)))` output.
    """
    check_nhwc(x, c, _conv_tail_kernel, "conv_tail")
    n, h, w, cs = x.shape
    oc = 3 * scale * scale
    na, nb = tail_width(oc)
    if tuple(weight.shape) != (3 * k_rows(cs), na + nb):
        raise BadInput(f"conv_tail: packed weight must be {(3 * k_rows(cs), na + nb)}, got {tuple(weight.shape)}")
    out = x.new_empty((n, 3, h * scale, w * scale))
    if add is not None and (add.shape != out.shape or add.dtype != out.dtype):
        raise BadInput(f"conv_tail: the added tensor must be {tuple(out.shape)} {out.dtype}, got {tuple(add.shape)}")
    consts = {
        "CS": cs,
        "KROWS": k_rows(cs),
        "KB": k_step(cs, x.element_size()),
        "OC": oc,
        "NA": na,
        "NB": nb,
        "SCALE": scale,
        "HAS_ADD": add is not None,
        **dot_constexprs(x, _conv_tail_kernel, fp32_precision),
    }
    add_t = add.contiguous() if add is not None else out
    launch_pixel_tiles(
        _conv_tail_kernel,
        ("conv_tail", x.dtype, c, scale),
        (n, h, w),
        (x, weight, bias, add_t, out, h, w),
        consts,
        TAIL_CONFIGS[tuning.compute_mode(x.dtype, consts["PRECISION"])],
        config=config,
    )
    return out
