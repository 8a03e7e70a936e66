"""nn.Module -> the same network on fused Triton kernels.

The whole paper SAFMN runs on 2 + 3 * n_blocks launches (26 for the default), every
activation in the padded NHWC layout (srx.kernels._common), every LayerNorm the epilogue
of the kernel that produces its input:

    conv_head        image -> x0 = to_feat(image), u = LN1(x0)                     (srx.kernels.conv)
    per block:
      multiscale_pool  u -> adaptive max pools of chunks 1..3                       (srx.kernels.multiscale)
      safm_tail        x, u, pools -> x1 = x + SAFM(u), u2 = LN2(x1)                (srx.kernels.safm_tail)
      ccm              x1, u2 -> x2 = x1 + CCM(u2) (+ x0 in the last block), u = LN1'(x2)  (srx.kernels.ccm)
    conv_tail        x -> PixelShuffle(to_img(x))                                   (srx.kernels.conv)

The NTIRE 2023 SAFMN (no LayerNorm: u is x itself) runs on the same kernels; its GRN,
a whole-image reduction, runs in PyTorch in FP32 whatever the activation dtype (its
whole-image sum of squares is the FP16 overflow risk of docs/precision.md), and its bilinear
image skip is added in conv_tail's epilogue. Anything else is returned unchanged with a
logged reason (or refused with strict=True); `fusable` says why beforehand.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from srx.errors import BadInput
from srx.kernels._common import (
    DEFAULT_FP32_PRECISION,
    FP32_PRECISIONS,
    channel_stride,
    from_nhwc,
    pow2,
    to_nhwc,
)
from srx.kernels.ccm import ccm, pack_ccm
from srx.kernels.conv import conv_head, conv_tail, pack_conv3x3, pack_head, tail_width
from srx.kernels.layer_norm import refuse_autograd
from srx.kernels.multiscale import multiscale_pool
from srx.kernels.safm_tail import pack_safm, safm_tail
from srx.models.layers import LayerNorm2d
from srx.models.safmn import SAFMN, AttBlock, SAFMNNtire23

log = logging.getLogger("srx.kernels")


def _padded(t: torch.Tensor, width: int) -> torch.Tensor:
    out = t.new_zeros(width)
    out[: t.numel()] = t.detach().reshape(-1)
    return out


class FusedAttBlock(nn.Module):
    """One feature-mixing block (FMM) on three launches: pool, SAFM tail, CCM.

    run(x, u) works on padded NHWC tensors: x is the block input, u = LN1(x) (x itself
    without LayerNorm); it returns the block output and, when `ln_next` is given, the next
    LayerNorm of it. forward(x) takes and returns NCHW, for using one block on its own.
    """

    def __init__(self, block: AttBlock) -> None:
        super().__init__()
        self.dim = block.safm.aggr.weight.shape[0]
        self.pool_factors = tuple(block.safm.pool_factors)
        self.has_ln = bool(block.norm)
        self.eps = block.norm1.eps if self.has_ln else 1e-6
        self.fp32_precision = DEFAULT_FP32_PRECISION
        cp = pow2(channel_stride(self.dim), 16)
        with torch.no_grad():
            tensors = {f"safm_{k}": v for k, v in pack_safm(block.safm, self.dim).items()}
            tensors.update({f"ccm_{k}": v for k, v in pack_ccm(block.ccm.ccm[0], block.ccm.ccm[2]).items()})
            if self.has_ln:
                for name in ("norm1", "norm2"):
                    norm = getattr(block, name)
                    tensors[f"{name}_w"] = _padded(norm.weight, cp)
                    tensors[f"{name}_b"] = _padded(norm.bias, cp)
        for k, v in tensors.items():
            self.register_buffer(k, v.contiguous(), persistent=False)

    def ln1(self) -> tuple[torch.Tensor, torch.Tensor, float] | None:
        return (self.norm1_w, self.norm1_b, self.eps) if self.has_ln else None

    def run(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        *,
        skip: torch.Tensor | None = None,
        ln_next: tuple[torch.Tensor, torch.Tensor, float] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        c, prec = self.dim, self.fp32_precision
        low = multiscale_pool(u, c, self.pool_factors)
        safm = {k[5:]: v for k, v in self._buffers.items() if k.startswith("safm_")}
        ln2 = (self.norm2_w, self.norm2_b, self.eps) if self.has_ln else None
        x1, u2 = safm_tail(x, u, low, safm, c, ln_out=ln2, fp32_precision=prec)
        packed = {k[4:]: v for k, v in self._buffers.items() if k.startswith("ccm_")}
        return ccm(x1, u2 if u2 is not None else x1, packed, c, skip=skip, ln_out=ln_next, fp32_precision=prec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        refuse_autograd(self, x)
        xs = to_nhwc(x.to(self.safm_aggr_w.dtype))
        if self.has_ln:
            u = to_nhwc(_layer_norm_reference(x.float(), self.norm1_w, self.norm1_b, self.eps, self.dim).to(xs.dtype))
        else:
            u = xs
        return from_nhwc(self.run(xs, u)[0], self.dim)


def _layer_norm_reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float, c: int) -> torch.Tensor:
    mean = x.mean(1, keepdim=True)
    var = (x - mean).pow(2).mean(1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w[:c, None, None].float() + b[:c, None, None].float()


def grn_fp32(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float, c: int) -> torch.Tensor:
    """GRN (srx.models.layers.GRN) of a padded NHWC tensor, computed in FP32, returned in x.dtype."""
    x32 = x.float()
    gx = torch.sqrt((x32 * x32).sum(dim=(1, 2), keepdim=True))  # (N, 1, 1, CS); padding channels are 0
    nx = gx / (gx[..., :c].mean(dim=-1, keepdim=True) + eps)
    return (gamma.float() * (x32 * nx) + beta.float() + x32).to(x.dtype)


class FusedSAFMN(nn.Module):
    """Paper SAFMN or NTIRE 2023 SAFMN on fused kernels; same I/O (NCHW) and `.spec`. Inference only.

    `fp32_precision` ("tf32x3" default, "ieee", "tf32") says how FP32 activations use the
    tensor cores (srx.kernels._common.FP32_PRECISIONS); FP16 and BF16 always do.
    """

    def __init__(self, model: SAFMN | SAFMNNtire23, fp32_precision: str = DEFAULT_FP32_PRECISION) -> None:
        super().__init__()
        self.ntire23 = isinstance(model, SAFMNNtire23)
        self.dim = model.to_feat.weight.shape[0]
        self.scale = math.isqrt(model.to_img[0].weight.shape[0] // 3)
        cs = channel_stride(self.dim)
        cp = pow2(cs, 16)
        self.blocks = nn.ModuleList(FusedAttBlock(b) for b in model.feats)
        self.has_ln = self.blocks[0].has_ln
        self.min_size = max(model.pool_factors)
        with torch.no_grad():
            head_w, head_b = pack_head(model.to_feat.weight, model.to_feat.bias, cp)
            tail = model.to_img[0]
            tail_w, tail_b = pack_conv3x3(tail.weight, tail.bias, sum(tail_width(tail.weight.shape[0])))
            tensors = {"head_w": head_w, "head_b": head_b, "tail_w": tail_w, "tail_b": tail_b}
            if self.ntire23:
                self.grn_eps = model.norm.eps
                tensors["grn_gamma"] = _padded(model.norm.gamma, cs)
                tensors["grn_beta"] = _padded(model.norm.beta, cs)
        for k, v in tensors.items():
            self.register_buffer(k, v.contiguous(), persistent=False)
        self.fp32_precision = fp32_precision
        if hasattr(model, "spec"):
            self.spec = model.spec
        p = next(model.parameters())
        self.to(p.device, p.dtype)

    @property
    def fp32_precision(self) -> str:
        return self._fp32_precision

    @fp32_precision.setter
    def fp32_precision(self, mode: str) -> None:
        if mode not in FP32_PRECISIONS:
            raise BadInput(f"unknown FP32 precision {mode!r}: use one of {', '.join(FP32_PRECISIONS)}")
        self._fp32_precision = mode
        for b in self.blocks:
            b.fp32_precision = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        refuse_autograd(self, x)
        h, w = x.shape[-2:]
        if h < self.min_size or w < self.min_size:
            raise BadInput(f"input {w}x{h} is smaller than this model's minimum of {self.min_size}x{self.min_size}")
        if x.dtype != self.head_w.dtype:
            raise BadInput(
                f"input is {x.dtype} but the fused model is {self.head_w.dtype}: convert one to the other "
                "(model.half() with x.half(), or model.float() with a float32 input)"
            )
        c, prec = self.dim, self.fp32_precision
        blocks = self.blocks
        feat, u = conv_head(x, self.head_w, self.head_b, c, ln=blocks[0].ln1(), fp32_precision=prec)
        ident = None
        if self.ntire23:
            feat = grn_fp32(feat, self.grn_gamma, self.grn_beta, self.grn_eps, c)
            ident = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        y = feat
        u = u if u is not None else feat
        last = len(blocks) - 1
        for i, block in enumerate(blocks):
            ln_next = blocks[i + 1].ln1() if i < last else None
            skip = feat if (i == last and not self.ntire23) else None
            y, u_next = block.run(y, u, skip=skip, ln_next=ln_next)
            u = u_next if u_next is not None else y
        return conv_tail(y, self.tail_w, self.tail_b, c, self.scale, add=ident, fp32_precision=prec)


def fusable(module: nn.Module) -> str | None:
    """None when `fuse` runs `module` on fused kernels, else why not (one line)."""
    if type(module) not in (SAFMN, SAFMNNtire23):
        spec = getattr(module, "spec", None)
        name = spec.arch if spec is not None else type(module).__name__
        return f"{name} has no fused kernels (supported: safmn, safmn-ntire23); it runs on the reference modules"
    dim = module.to_feat.weight.shape[0]
    if dim % 4:
        return f"dim {dim} is not divisible by 4 (SAFM's channel split)"
    if dim > 256:
        return f"dim {dim} is above 256, beyond what the fused kernels keep in registers"
    eps = {m.eps for m in module.modules() if isinstance(m, LayerNorm2d)}
    if len(eps) > 1:
        return f"the LayerNorms use different eps values {sorted(eps)}"
    if len(module.feats) < 1:
        return "the model has no feature blocks"
    return None


def fuse(module: nn.Module, *, strict: bool = False, fp32_precision: str = DEFAULT_FP32_PRECISION) -> nn.Module:
    """The same network on fused Triton kernels, or `module` itself with a logged reason.

    The result is a new module (the original is untouched) in eval mode, on the
    original's device and dtype, carrying the same `.spec`. `.half()` / `.cuda()` work
    on it as on any module. Its forward needs CUDA tensors (or the Triton interpreter):
    on a CPU tensor it raises BadInput rather than silently running the reference.
    strict=True raises BadInput instead of falling back for an unsupported model.
    """
    reason = fusable(module)
    if reason is not None:
        if strict:
            raise BadInput(f"cannot fuse: {reason}")
        log.warning("srx.kernels.fuse: %s", reason)
        return module
    return FusedSAFMN(module, fp32_precision).eval()  # type: ignore[arg-type]
