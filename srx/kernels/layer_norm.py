"""Channels-first LayerNorm (SAFMN's LayerNorm2d) on NCHW tensors in one pass, FP32 statistics.

    mean_p = (1/C) sum_c x[c, p]
    var_p  = (1/C) sum_c (x[c, p] - mean_p)^2
    y[c, p] = weight[c] * (x[c, p] - mean_p) / sqrt(var_p + eps) + bias[c]

A standalone drop-in for users who want only the LayerNorm on a GPU; the fused model does
not call it (there every LayerNorm is the epilogue of the kernel that produces its input,
srx.kernels._common.layer_norm_rows). x and y in FP32, FP16 or BF16; statistics in FP32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import nn

from srx.errors import BadInput
from srx.kernels._common import check_device, interpreted, pow2

# One program holds a [BLOCK_P, C_PAD] FP32 tile; ~4096 elements keeps it in registers
# with 4 warps (32 values per thread) at any dim.
TILE_ELEMENTS = 4096
INTERPRETER_TILE_SCALE = 8


@triton.jit
def _layer_norm_kernel(
    X,
    WEIGHT,
    BIAS,
    Y,
    C,
    HW,
    eps,
    BLOCK_P: tl.constexpr,  # pixels per program: sized so the whole [BLOCK_P, C_PAD] tile fits in registers
    C_PAD: tl.constexpr,  # channels rounded up to a power of two (tl.arange), masked beyond C
):
    n = tl.program_id(1)
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.arange(0, C_PAD)
    cm = c < C
    mask = (p < HW)[:, None] & cm[None, :]
    offs = c[None, :] * HW + p[:, None]
    base = n.to(tl.int64) * C * HW
    x = tl.load(X + base + offs, mask=mask, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=1) / C
    d = tl.where(mask, x - mean[:, None], 0.0)
    rstd = tl.math.div_rn(1.0, tl.sqrt_rn(tl.sum(d * d, axis=1) / C + eps))
    w = tl.load(WEIGHT + c, mask=cm, other=0.0).to(tl.float32)
    b = tl.load(BIAS + c, mask=cm, other=0.0).to(tl.float32)
    y = d * rstd[:, None] * w[None, :] + b[None, :]
    tl.store(Y + base + offs, y.to(Y.dtype.element_ty), mask=mask)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """LayerNorm2d over the channel axis of an NCHW tensor (output in x.dtype)."""
    check_device(x, _layer_norm_kernel, "layer_norm")
    if x.dim() != 4:
        raise BadInput(f"layer_norm: expected an NCHW tensor, got shape {tuple(x.shape)}")
    if weight.numel() != x.shape[1] or bias.numel() != x.shape[1]:
        raise BadInput(f"layer_norm: weight and bias must have {x.shape[1]} elements (the channel count)")
    x = x.contiguous()
    n, c, h, w = x.shape
    c_pad = pow2(c)
    block_p = max(16, min(1024, TILE_ELEMENTS // c_pad))
    if interpreted(_layer_norm_kernel):
        block_p *= INTERPRETER_TILE_SCALE
    y = torch.empty_like(x)
    _layer_norm_kernel[(triton.cdiv(h * w, block_p), n)](
        x, weight, bias, y, c, h * w, eps, BLOCK_P=block_p, C_PAD=c_pad
    )
    return y


def refuse_autograd(module: nn.Module, x: torch.Tensor) -> None:
    """The kernels have no backward: refuse a call that would silently return no gradient."""
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in module.parameters())):
        raise BadInput(
            f"{type(module).__name__} runs inference-only Triton kernels (no gradients): call it under "
            "torch.no_grad() or torch.inference_mode(), or train the reference PyTorch model instead"
        )


class TritonLayerNorm2d(nn.Module):
    """Drop-in for srx.models.layers.LayerNorm2d on the Triton kernel (same parameters), inference only."""

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
        refuse_autograd(self, x)
        return layer_norm(x, self.weight, self.bias, self.eps)
