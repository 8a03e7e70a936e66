"""nn.Module -> the same network on fused Triton kernels.

Per feature-mixing block (FMM) four launches replace 39 eager ops (19 in NTIRE 2023; docs/kernels.md):

    multiscale_pool   u = LN1(x) on the fly; adaptive max pool of chunks 1..3 (all levels)
    lowres_dwconv     depthwise 3x3 of the three low-resolution maps (all levels)
    safm_tail         chunk-0 dwconv + nearest gather + 1x1 + GELU + * u + x; LN2 statistics
    ccm               LN2 prologue + 3x3 + GELU + 1x1 + residual (+ long skip); next LN1 statistics

Supported: the paper SAFMN (any dim / n_blocks / ffn_scale / scale) and the NTIRE 2023
SAFMN (its GRN, first and last convs, PixelShuffle and bilinear image skip stay PyTorch;
GRN runs in FP32 whatever the activation dtype, because its whole-image sum of squares
is the FP16 overflow risk DESIGN.md names). Anything else is returned unchanged with a
logged reason (or refused with strict=True); `fusable` says why beforehand.
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from torch import nn

from srx.errors import BadInput
from srx.kernels.ccm import ccm
from srx.kernels.layer_norm import layer_norm_stats
from srx.kernels.multiscale import lowres_dwconv, multiscale_pool
from srx.kernels.safm_tail import safm_tail
from srx.models.layers import GRN, LayerNorm2d
from srx.models.safmn import SAFM, SAFMN, AttBlock, SAFMNNtire23

log = logging.getLogger("srx.kernels")


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    w = conv.weight
    return (
        conv.bias.detach().clone() if conv.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
    )


class FusedSAFM(nn.Module):
    """x + SAFM(LN1(x)) (or x + SAFM(x) without LayerNorm) in three launches.

    forward(x, stats) -> (y, LN2 statistics of y or None). `stats` are x's per-pixel
    LayerNorm statistics (srx.kernels.layer_norm.layer_norm_stats); None without LN.
    """

    def __init__(self, safm: SAFM, norm: LayerNorm2d | None, want_stats: bool) -> None:
        super().__init__()
        self.pool_factors = tuple(safm.pool_factors)
        self.has_ln = norm is not None
        self.eps = norm.eps if norm is not None else 1e-6
        self.want_stats = want_stats
        cq = safm.mfr[0].weight.shape[0]
        with torch.no_grad():
            if norm is not None:
                self.register_buffer("ln_w", norm.weight.detach().clone(), persistent=False)
                self.register_buffer("ln_b", norm.bias.detach().clone(), persistent=False)
            self.register_buffer("dw0_w", safm.mfr[0].weight.detach().reshape(cq, 9).clone(), persistent=False)
            self.register_buffer("dw0_b", _bias(safm.mfr[0]), persistent=False)
            low_w = torch.stack([safm.mfr[i].weight.detach().reshape(cq, 9) for i in (1, 2, 3)])
            self.register_buffer("low_w", low_w.contiguous(), persistent=False)
            self.register_buffer("low_b", torch.stack([_bias(safm.mfr[i]) for i in (1, 2, 3)]), persistent=False)
            aggr = safm.aggr.weight.detach()
            self.register_buffer("aggr_wt", aggr.reshape(aggr.shape[0], -1).t().contiguous(), persistent=False)
            self.register_buffer("aggr_b", _bias(safm.aggr), persistent=False)

    def forward(self, x: torch.Tensor, stats: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.has_ln and stats is None:
            stats = layer_norm_stats(x, self.eps)
        ln = (self.ln_w, self.ln_b) if self.has_ln else (None, None)
        low = multiscale_pool(x, self.pool_factors, stats if self.has_ln else None, *ln)
        low = lowres_dwconv(low, self.low_w, self.low_b)
        return safm_tail(
            x,
            low,
            self.dw0_w,
            self.dw0_b,
            self.aggr_wt,
            self.aggr_b,
            stats=stats if self.has_ln else None,
            ln_weight=ln[0],
            ln_bias=ln[1],
            want_stats=self.want_stats,
            eps=self.eps,
        )


class FusedCCM(nn.Module):
    """x + CCM(LN2(x)) (or x + CCM(x)) in one launch; forward(x, stats, skip, want_stats)."""

    def __init__(self, ccm_module: nn.Module, norm: LayerNorm2d | None) -> None:
        super().__init__()
        conv1, conv2 = ccm_module.ccm[0], ccm_module.ccm[2]
        self.has_ln = norm is not None
        self.eps = norm.eps if norm is not None else 1e-6
        with torch.no_grad():
            if norm is not None:
                self.register_buffer("ln_w", norm.weight.detach().clone(), persistent=False)
                self.register_buffer("ln_b", norm.bias.detach().clone(), persistent=False)
            w1 = conv1.weight.detach()  # (Hd, C, 3, 3) -> (9, C, Hd)
            self.register_buffer("w1", w1.permute(2, 3, 1, 0).reshape(9, w1.shape[1], w1.shape[0]).contiguous(), False)
            self.register_buffer("b1", _bias(conv1), persistent=False)
            w2 = conv2.weight.detach()  # (C, Hd, 1, 1) -> (Hd, C)
            self.register_buffer("w2", w2.reshape(w2.shape[0], -1).t().contiguous(), persistent=False)
            self.register_buffer("b2", _bias(conv2), persistent=False)

    def forward(
        self,
        x: torch.Tensor,
        stats: torch.Tensor | None = None,
        skip: torch.Tensor | None = None,
        want_stats: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.has_ln and stats is None:
            stats = layer_norm_stats(x, self.eps)
        return ccm(
            x,
            self.w1,
            self.b1,
            self.w2,
            self.b2,
            stats=stats if self.has_ln else None,
            ln_weight=self.ln_w if self.has_ln else None,
            ln_bias=self.ln_b if self.has_ln else None,
            skip=skip,
            want_stats=want_stats,
            eps=self.eps,
        )


class FusedAttBlock(nn.Module):
    """One FMM on fused kernels: four launches, LN1/LN2 never stored (docs/kernels.md).

    forward(x) -> y like AttBlock; `run` threads the LayerNorm statistics from block to
    block so the next block's LN1 statistics come out of this block's CCM epilogue.
    """

    def __init__(self, block: AttBlock) -> None:
        super().__init__()
        self.has_ln = bool(block.norm)
        self.eps = block.norm1.eps if self.has_ln else 1e-6
        self.safm = FusedSAFM(block.safm, block.norm1 if self.has_ln else None, want_stats=self.has_ln)
        self.ccm = FusedCCM(block.ccm, block.norm2 if self.has_ln else None)

    def run(
        self,
        x: torch.Tensor,
        stats: torch.Tensor | None,
        *,
        skip: torch.Tensor | None = None,
        want_stats: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x1, stats2 = self.safm(x, stats)
        return self.ccm(x1, stats2, skip=skip, want_stats=want_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x, None)[0]


class GRNFloat32(GRN):
    """GRN computed in FP32 whatever the input dtype (its global sum of squares overflows FP16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        gx = torch.norm(x32, p=2, dim=(2, 3), keepdim=True)
        nx = gx / (gx.mean(dim=1, keepdim=True) + self.eps)
        return (self.gamma.float() * (x32 * nx) + self.beta.float() + x32).to(x.dtype)


class FusedSAFMN(nn.Module):
    """Paper SAFMN or NTIRE 2023 SAFMN with every FMM on fused kernels; same I/O and `.spec`."""

    def __init__(self, model: SAFMN | SAFMNNtire23) -> None:
        super().__init__()
        self.to_feat = copy.deepcopy(model.to_feat)
        self.to_img = copy.deepcopy(model.to_img)
        self.ntire23 = isinstance(model, SAFMNNtire23)
        if self.ntire23:
            self.norm = GRNFloat32(model.norm.gamma.shape[1], model.norm.eps)
            self.norm.load_state_dict(model.norm.state_dict())
            self.scale = model.scale
        self.blocks = nn.ModuleList(FusedAttBlock(b) for b in model.feats)
        self.has_ln = self.blocks[0].has_ln
        self.eps = self.blocks[0].eps
        self.min_size = max(model.pool_factors)
        if hasattr(model, "spec"):
            self.spec = model.spec
        self.to(next(model.parameters()).device, next(model.parameters()).dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < self.min_size or w < self.min_size:
            raise BadInput(f"input {w}x{h} is smaller than this model's minimum of {self.min_size}x{self.min_size}")
        if self.ntire23:
            ident = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
            feat = self.norm(self.to_feat(x))
        else:
            feat = self.to_feat(x)
        stats = layer_norm_stats(feat, self.eps) if self.has_ln else None
        y = feat
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            y, stats = block.run(
                y,
                stats,
                skip=feat if (i == last and not self.ntire23) else None,
                want_stats=self.has_ln and i < last,
            )
        out = self.to_img(y)
        return out + ident if self.ntire23 else out


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


def fuse(module: nn.Module, *, strict: bool = False) -> nn.Module:
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
    return FusedSAFMN(module).eval()  # type: ignore[arg-type]
