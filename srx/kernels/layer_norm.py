"""Channels-first LayerNorm (SAFMN's LayerNorm2d) in one pass, FP32 statistics.

    mean_p = (1/C) sum_c x[c, p]
    var_p  = (1/C) sum_c (x[c, p] - mean_p)^2
    rstd_p = 1 / sqrt(var_p + eps)
    y[c, p] = weight[c] * (x[c, p] - mean_p) * rstd_p + bias[c]

x, y in FP32, FP16 or BF16; statistics always in FP32 (the hand-written reference
squares (x - mean), which overflows FP16 with trained weights, and eps = 1e-6 is below
FP16's smallest normal). The kernel writes either y or only (mean_p, rstd_p): the fused
block computes the statistics once and normalises inside its consumers (docs/kernels.md,
"LayerNorm as a prologue").
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import nn

from srx.errors import BadInput
from srx.kernels._common import channel_stats, check_input, pow2, stats_buffer, tile

# One program holds a [BLOCK_P, C_PAD] FP32 tile; ~4096 elements keeps it in registers
# with 4 warps (32 values per thread) at any dim.
TILE_ELEMENTS = 4096


@triton.jit
def _layer_norm_kernel(
    X,
    WEIGHT,
    BIAS,
    Y,
    STATS,
    C,
    HW,
    eps,
    BLOCK_P: tl.constexpr,  # pixels per program: sized so the whole [BLOCK_P, C_PAD] tile fits in registers
    C_PAD: tl.constexpr,  # channels rounded up to a power of two (tl.arange), masked beyond C
    STORE_Y: tl.constexpr,  # False when only the statistics are needed (the fused block's first LN)
    STORE_STATS: tl.constexpr,  # False for the plain LayerNorm module, which needs no statistics afterwards
):
    n = tl.program_id(1)
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.arange(0, C_PAD)
    pm = p < HW
    mask = pm[:, None] & (c < C)[None, :]
    offs = c[None, :] * HW + p[:, None]
    base = n.to(tl.int64) * C * HW
    x = tl.load(X + base + offs, mask=mask, other=0.0).to(tl.float32)
    mean, rstd = channel_stats(x, mask, C, eps)
    if STORE_Y:
        w = tl.load(WEIGHT + c, mask=c < C, other=0.0).to(tl.float32)
        b = tl.load(BIAS + c, mask=c < C, other=0.0).to(tl.float32)
        y = (x - mean[:, None]) * rstd[:, None] * w[None, :] + b[None, :]
        tl.store(Y + base + offs, y.to(Y.dtype.element_ty), mask=mask)
    if STORE_STATS:
        s = STATS + n.to(tl.int64) * 2 * HW
        tl.store(s + p, mean, mask=pm)
        tl.store(s + HW + p, rstd, mask=pm)


def _launch(
    x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float, *, store_y: bool
) -> torch.Tensor:
    x = check_input(x, _layer_norm_kernel, "layer_norm")
    n, c, h, w = x.shape
    c_pad = pow2(c)
    block_p = tile(max(16, min(1024, TILE_ELEMENTS // c_pad)), _layer_norm_kernel)
    out = torch.empty_like(x) if store_y else stats_buffer(x)
    y, stats = (out, x) if store_y else (x, out)  # the unused pointer is never dereferenced
    grid = (triton.cdiv(h * w, block_p), n)
    _layer_norm_kernel[grid](
        x,
        weight if store_y else x,
        bias if store_y else x,
        y,
        stats,
        c,
        h * w,
        eps,
        BLOCK_P=block_p,
        C_PAD=c_pad,
        STORE_Y=store_y,
        STORE_STATS=not store_y,
    )
    return out


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """LayerNorm2d over the channel axis of an NCHW tensor (output in x.dtype)."""
    if weight.numel() != x.shape[1] or bias.numel() != x.shape[1]:
        raise BadInput(f"layer_norm: weight and bias must have {x.shape[1]} elements (the channel count)")
    return _launch(x, weight, bias, eps, store_y=True)


def layer_norm_stats(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(N, 2, H, W) float32 per-pixel [mean, 1/sqrt(var + eps)] over the channel axis."""
    return _launch(x, None, None, eps, store_y=False)


class TritonLayerNorm2d(nn.Module):
    """Drop-in for srx.models.layers.LayerNorm2d on the Triton kernel (same parameters)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    @classmethod
    def from_reference(cls, ref: nn.Module) -> TritonLayerNorm2d:
        m = cls(ref.weight.numel(), ref.eps)
        m.load_state_dict(ref.state_dict())
        return m.to(ref.weight.device, ref.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm(x, self.weight, self.bias, self.eps)
