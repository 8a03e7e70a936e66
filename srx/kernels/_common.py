"""What every fused SAFMN kernel shares: the activation layout, dtype and precision rules, GELU.

Layout between kernels ("padded NHWC"): an activation with C channels is an (N, H, W, CS)
contiguous tensor, CS = C rounded up to a multiple of 8, channels C..CS-1 zero. Channels
last makes the 3x3 convolutions implicit GEMMs whose K axis is contiguous in memory: the
three horizontal taps of one image row are 3 * CS consecutive values, and a CS that is a
multiple of 8 puts every pixel on a 16-byte boundary (FP16), so loads are 16-byte vectors
and asynchronous copies. Inside a kernel a tile is [pixels, channels] with the pixel index
flattened over H*W of one image (program axis 1 is the image in the batch), so a tile can
span row ends and odd widths (17, 23, 33) need no special case. Offsets inside one image
are int32 (H*W*CS < 2**31: dim 128 at 4K is fine); the per-image base is int64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import triton
import triton.language as tl

from srx.errors import BadInput
from srx.kernels import tuning
from srx.kernels._layout import MIN_DOT, channel_stride, chunk_stride, pow2, round_up, split_width
from srx.kernels.tuning import Config, interpreted, recording

__all__ = ["MIN_DOT", "channel_stride", "chunk_stride", "interpreted", "pow2", "round_up", "split_width"]

# The launch of conv_head, conv_tail and ccm under TRITON_INTERPRET=1 (CPU correctness runs;
# large tiles: the interpreter pays per op, not per element). safm_tail has its own, larger one.
INTERPRETER = Config(512, 4, 1)

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# How FP32 activations meet the tensor cores (FP16 / BF16 always use them, FP32 accumulation):
#   ieee    exact FP32 products on the CUDA cores (no tensor cores): the slow, exact mode
#   tf32x3  three TF32 tensor-core products per product (hi*hi + hi*lo + lo*hi): ~FP32 accuracy
#   tf32    one TF32 product (10-bit mantissa), what PyTorch's convolutions do by default
FP32_PRECISIONS = ("ieee", "tf32x3", "tf32")
DEFAULT_FP32_PRECISION = "tf32x3"


def check_device(x: torch.Tensor, kernel: object, what: str) -> None:
    """Fail clearly instead of silently falling back, so a benchmark of the fused path can
    never measure the reference by accident (docs/kernels.md: device policy)."""
    if x.dtype not in SUPPORTED_DTYPES:
        raise BadInput(f"{what}: fused kernels take float32, float16 or bfloat16 tensors, got {x.dtype}")
    if not x.is_cuda and not interpreted(kernel) and not recording():
        raise BadInput(
            f"{what}: fused Triton kernels need CUDA tensors, got a {x.device.type} tensor; move the model and "
            "input to a CUDA GPU, run the reference model on the CPU, or set TRITON_INTERPRET=1 before "
            "importing srx.kernels for a slow CPU correctness check"
        )


def check_nhwc(x: torch.Tensor, c: int, kernel: object, what: str) -> None:
    """An activation in the padded NHWC layout with c real channels."""
    check_device(x, kernel, what)
    if x.dim() != 4 or x.shape[-1] != channel_stride(c) or not x.is_contiguous():
        raise BadInput(
            f"{what}: expected a contiguous (N, H, W, {channel_stride(c)}) padded channels-last tensor for "
            f"{c} channels, got shape {tuple(x.shape)}; convert with srx.kernels._common.to_nhwc"
        )


def to_nhwc(x: torch.Tensor) -> torch.Tensor:
    """NCHW -> the padded NHWC layout (a copy; padding channels are zero)."""
    n, c, h, w = x.shape
    out = x.new_zeros((n, h, w, channel_stride(c)))
    out[..., :c] = x.permute(0, 2, 3, 1)
    return out


def from_nhwc(x: torch.Tensor, c: int) -> torch.Tensor:
    """The padded NHWC layout -> a contiguous NCHW tensor of its first c channels."""
    return x[..., :c].permute(0, 3, 1, 2).contiguous()


def dot_dtype(x: torch.Tensor, kernel: object) -> tl.dtype:
    """Operand type of tl.dot for activations of x.dtype.

    FP16/BF16 feed the tensor cores with FP32 accumulation, the rounding eager FP16 does.
    FP32 operands stay FP32; `dot_precision` says how they are multiplied.
    The interpreter multiplies BF16 bit patterns in tl.dot (triton-lang/triton#11584),
    so there BF16 operands go through FP32: the CPU check of BF16 is of FP32 dots.
    """
    if x.dtype == torch.float16:
        return tl.float16
    if x.dtype == torch.bfloat16 and not interpreted(kernel):
        return tl.bfloat16
    return tl.float32


def dot_precision(x: torch.Tensor, fp32_precision: str) -> str:
    """tl.dot input_precision: the FP32 mode for FP32 activations; irrelevant (ieee) otherwise."""
    if fp32_precision not in FP32_PRECISIONS:
        raise BadInput(f"unknown FP32 precision {fp32_precision!r}: use one of {', '.join(FP32_PRECISIONS)}")
    return fp32_precision if x.dtype == torch.float32 else "ieee"


def dot_constexprs(x: torch.Tensor, kernel: object, fp32_precision: str) -> dict[str, Any]:
    """The GEMM constexprs every tensor-core kernel takes: operand type and FP32 precision."""
    return {"DOT_DTYPE": dot_dtype(x, kernel), "PRECISION": dot_precision(x, fp32_precision)}


def launch_pixel_tiles(
    kernel: Any,
    key: tuple[Any, ...],
    shape: tuple[int, int, int],
    args: tuple[Any, ...],
    constexprs: dict[str, Any],
    candidates: Sequence[Config],
    *,
    interpreter: Config = INTERPRETER,
    config: Config | None = None,
) -> Config:
    """Launch a `pixel_tile` kernel over (tiles of one image's H*W pixels, images).

    `key` = (kernel name, activation dtype, *what else changes the best configuration); the
    precision and the size class are added, so every kernel's tuning key has the same shape.
    `shape` is (N, H, W) of the output pixels.
    """
    n, h, w = shape
    full_key = (*key[:2], constexprs["PRECISION"], *key[2:], tuning.size_class(n * h * w))
    return tuning.launch(
        kernel,
        full_key,
        lambda cfg: (triton.cdiv(h * w, cfg.block_p), n),
        args,
        constexprs,
        candidates,
        interpreter=interpreter,
        config=config,
    )


@triton.jit
def pixel_tile(H, W, CS: tl.constexpr, BLOCK_P: tl.constexpr):
    """This program's tile (grid of `launch_pixel_tiles`): image n = program axis 1, its flattened
    pixels p (int32 inside one image), which of them exist (pm), their rows hh and columns ww,
    and the image's int64 base offset in a padded NHWC tensor of channel stride CS."""
    n = tl.program_id(1)
    HW = H * W
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    pm = p < HW
    hh = p // W
    ww = p - hh * W
    base = n.to(tl.int64) * HW * CS
    return n, p, pm, hh, ww, base


@triton.jit
def nhwc_tile(p, pm, c, CS: tl.constexpr):
    """Offsets (inside one image) and mask of the [pixels, lanes c] tile of a padded NHWC tensor:
    lanes >= CS (the tile is a power of two wide) and missing pixels are masked."""
    offs = p[:, None] * CS + c[None, :]
    smask = pm[:, None] & (c < CS)[None, :]
    return offs, smask


@triton.jit
def gelu(x):
    """Exact GELU as nn.GELU(): 0.5 * x * (1 + erf(x / sqrt(2)))."""
    return 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))


@triton.jit
def layer_norm_rows(y, cmask, C, eps, LN_W, LN_B, c):
    """Channels-first LayerNorm of a [pixels, channels] FP32 tile whose rows are pixels.

    Two-pass FP32 statistics (mean, then the mean of squared deviations) like the reference
    LayerNorm2d, whatever the activation dtype: the hand-written FP16 LayerNorm squares
    (x - mean) and overflows with trained weights, and eps = 1e-6 is below FP16's smallest
    normal. Channels outside `cmask` count as absent and come out zero (LN_W, LN_B are
    zero-padded), so the padded layout stays zero-padded.
    """
    d, rstd = _layer_norm_stats(y, cmask, C, eps)
    w = tl.load(LN_W + c).to(tl.float32)
    b = tl.load(LN_B + c).to(tl.float32)
    return d * rstd[:, None] * w[None, :] + b[None, :]


@triton.jit
def layer_norm_rows_affine(y, cmask, C, eps, w, b):
    """layer_norm_rows with its weight and bias already loaded (ccm issues them early, so its
    epilogue does not wait on them after the statistics)."""
    d, rstd = _layer_norm_stats(y, cmask, C, eps)
    return d * rstd[:, None] * w.to(tl.float32)[None, :] + b.to(tl.float32)[None, :]


@triton.jit
def _layer_norm_stats(y, cmask, C, eps):
    """Deviations from the row mean (zero outside cmask) and 1 / sqrt(variance + eps)."""
    mean = tl.sum(tl.where(cmask, y, 0.0), axis=1) / C
    d = tl.where(cmask, y - mean[:, None], 0.0)
    var = tl.sum(d * d, axis=1) / C
    return d, tl.math.div_rn(1.0, tl.sqrt_rn(var + eps))
