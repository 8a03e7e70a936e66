"""Launch plumbing shared by the fused SAFMN kernels: device and dtype rules, GELU, LN prologue.

Tensors are NCHW and contiguous. Inside a kernel a tile is [pixels, channels] with the
pixel index flattened over H*W of one image (program axis 1 is the image in the batch),
so every load and store is contiguous along pixels (NCHW's fastest axis) and a tile can
span row ends, which keeps odd widths (17, 23, 33) free of special cases.
Offsets inside one image are int32 (C*H*W < 2**31 holds up to dim 128 at 4K); the
per-image base is int64 so large batches cannot overflow.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from srx.errors import BadInput

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

# Smallest tl.dot operand side Triton accepts on NVIDIA GPUs (M, N, K >= 16).
MIN_DOT = 16


def pow2(n: int, floor: int = 1) -> int:
    """Next power of two >= max(n, floor): tl.arange needs power-of-two extents."""
    return max(floor, triton.next_power_of_2(n))


# The interpreter runs every tl op of every program in numpy at a fixed cost per op, so
# under it the launchers take tiles this many times larger (fewer programs, same kernel).
INTERPRETER_TILE_SCALE = 8


def interpreted(kernel: object) -> bool:
    """True when `kernel` was decorated under TRITON_INTERPRET=1 (runs on the CPU with numpy)."""
    return type(kernel).__name__ == "InterpretedFunction"


def tile(gpu_size: int, kernel: object) -> int:
    """A launcher's tile size: the GPU choice, or a larger one under the interpreter."""
    return gpu_size * INTERPRETER_TILE_SCALE if interpreted(kernel) else gpu_size


def check_input(x: torch.Tensor, kernel: object, what: str) -> torch.Tensor:
    """Validate an activation for a fused kernel; returns it contiguous.

    Policy (docs/kernels.md): fail clearly instead of silently falling back, so a
    benchmark of the fused path can never measure the reference by accident.
    """
    if x.dtype not in SUPPORTED_DTYPES:
        raise BadInput(f"{what}: fused kernels take float32, float16 or bfloat16 tensors, got {x.dtype}")
    if x.dim() != 4:
        raise BadInput(f"{what}: expected an NCHW tensor, got shape {tuple(x.shape)}")
    if not x.is_cuda and not interpreted(kernel):
        raise BadInput(
            f"{what}: fused Triton kernels need CUDA tensors, got a {x.device.type} tensor; move the model and "
            "input to a CUDA GPU, run the reference model on the CPU, or set TRITON_INTERPRET=1 before "
            "importing srx.kernels for a slow CPU correctness check"
        )
    return x.contiguous()


def dot_dtype(x: torch.Tensor, kernel: object) -> tl.dtype:
    """Operand type of tl.dot for activations of x.dtype.

    FP32 stays IEEE FP32 (no TF32) so fused FP32 matches the reference within 1e-4.
    FP16/BF16 feed tensor cores with FP32 accumulation, the rounding eager FP16 does.
    The interpreter multiplies BF16 bit patterns in tl.dot (triton-lang/triton#11584),
    so there BF16 operands go through FP32: the CPU check of BF16 is of FP32 dots.
    """
    if x.dtype == torch.float16:
        return tl.float16
    if x.dtype == torch.bfloat16 and not interpreted(kernel):
        return tl.bfloat16
    return tl.float32


def stats_buffer(x: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) float32: per-pixel channel mean and 1/sqrt(var + eps) of x."""
    n, _, h, w = x.shape
    return torch.empty((n, 2, h, w), device=x.device, dtype=torch.float32)


@triton.jit
def gelu(x):
    """Exact GELU as nn.GELU(): 0.5 * x * (1 + erf(x / sqrt(2)))."""
    return 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))


@triton.jit
def channel_stats(y, mask, C, eps):
    """Mean and 1/sqrt(var + eps) over axis 1 of a [pixels, channels] FP32 tile.

    Two-pass (mean first, then the mean of squared deviations) in FP32, like the
    reference LayerNorm2d; masked lanes count as absent, not as zeros.
    """
    mean = tl.sum(tl.where(mask, y, 0.0), axis=1) / C
    d = tl.where(mask, y - mean[:, None], 0.0)
    var = tl.sum(d * d, axis=1) / C
    rstd = tl.math.div_rn(1.0, tl.sqrt_rn(var + eps))
    return mean, rstd


@triton.jit
def load_stats(stats_n, offs, mask, HW):
    """Mean and rstd at flattened pixel offsets of one image's (2, H, W) stats plane."""
    mean = tl.load(stats_n + offs, mask=mask, other=0.0)
    rstd = tl.load(stats_n + HW + offs, mask=mask, other=0.0)
    return mean, rstd
