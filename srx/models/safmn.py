"""The paper SAFMN (ICCV 2023) and its NTIRE 2023 ESR variant (team15).

Both share SAFM and CCM; the variant drops the per-block LayerNorms and biases, pools
one level coarser (1/4, 1/8, 1/16 instead of 1/2, 1/4, 1/8), adds one GRN after the
first conv, and replaces the long feature skip with a bilinear image skip.
Module and parameter names are the official ones so release files load strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srx.models.layers import GRN, LayerNorm2d, adaptive_max_pool, nearest_resize

N_LEVELS = 4
PAPER_POOL_FACTORS = (2, 4, 8)
NTIRE23_POOL_FACTORS = (4, 8, 16)


def hidden_width(dim: int, ffn_scale: float) -> int:
    # int() as upstream; the epsilon keeps dim * (hidden / dim) from rounding down.
    return int(dim * ffn_scale + 1e-6)


class CCM(nn.Module):
    """Convolutional channel mixer: 3x3 conv dim -> hidden, GELU, 1x1 conv back."""

    def __init__(self, dim: int, ffn_scale: float, bias: bool = True) -> None:
        super().__init__()
        hidden = hidden_width(dim, ffn_scale)
        self.ccm = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, 1, 1, bias=bias),
            nn.GELU(),
            nn.Conv2d(hidden, dim, 1, 1, 0, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ccm(x)


class SAFM(nn.Module):
    """Spatially-adaptive feature modulation.

    Chunk 0 -> depthwise 3x3; chunk i -> adaptive max pool to (h // f_i, w // f_i) ->
    depthwise 3x3 -> nearest resize to (h, w); concat -> 1x1 conv -> GELU -> * x.
    """

    def __init__(self, dim: int, pool_factors: tuple[int, ...], bias: bool = True) -> None:
        super().__init__()
        chunk = dim // N_LEVELS
        self.pool_factors = pool_factors
        self.mfr = nn.ModuleList([nn.Conv2d(chunk, chunk, 3, 1, 1, groups=chunk, bias=bias) for _ in range(N_LEVELS)])
        self.aggr = nn.Conv2d(dim, dim, 1, 1, 0, bias=bias)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        chunks = x.chunk(N_LEVELS, dim=1)
        out = [self.mfr[0](chunks[0])]
        for i, factor in enumerate(self.pool_factors, start=1):
            s = self.mfr[i](adaptive_max_pool(chunks[i], factor))
            out.append(nearest_resize(s, (h, w)))
        return self.act(self.aggr(torch.cat(out, dim=1))) * x


class AttBlock(nn.Module):
    """Feature mixing module: x = SAFM(LN(x)) + x; x = CCM(LN(x)) + x (LN only in the paper model)."""

    def __init__(self, dim: int, ffn_scale: float, pool_factors: tuple[int, ...], norm: bool, bias: bool) -> None:
        super().__init__()
        if norm:
            self.norm1 = LayerNorm2d(dim)
            self.norm2 = LayerNorm2d(dim)
        self.norm = norm
        self.safm = SAFM(dim, pool_factors, bias)
        self.ccm = CCM(dim, ffn_scale, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm:
            x = self.safm(self.norm1(x)) + x
            return self.ccm(self.norm2(x)) + x
        x = self.safm(x) + x
        return self.ccm(x) + x


class SAFMN(nn.Module):
    """Paper SAFMN: conv3x3 -> n_blocks x FMM -> long skip -> conv3x3 -> PixelShuffle."""

    pool_factors = PAPER_POOL_FACTORS

    def __init__(self, dim: int = 36, n_blocks: int = 8, ffn_scale: float = 2.0, scale: int = 4) -> None:
        super().__init__()
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1)
        self.feats = nn.Sequential(
            *[AttBlock(dim, ffn_scale, self.pool_factors, norm=True, bias=True) for _ in range(n_blocks)]
        )
        self.to_img = nn.Sequential(nn.Conv2d(dim, 3 * scale**2, 3, 1, 1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_feat(x)
        x = self.feats(x) + x
        return self.to_img(x)


class SAFMNNtire23(nn.Module):
    """NTIRE 2023 ESR SAFMN: conv3x3 -> GRN -> blocks -> conv3x3 -> PixelShuffle, + bilinear(x)."""

    pool_factors = NTIRE23_POOL_FACTORS

    def __init__(self, dim: int = 36, n_blocks: int = 8, ffn_scale: float = 2.0, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.norm = GRN(dim)
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1)
        self.feats = nn.Sequential(
            *[AttBlock(dim, ffn_scale, self.pool_factors, norm=False, bias=False) for _ in range(n_blocks)]
        )
        self.to_img = nn.Sequential(nn.Conv2d(dim, 3 * scale**2, 3, 1, 1), nn.PixelShuffle(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ident = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        x = self.norm(self.to_feat(x))
        return self.to_img(self.feats(x)) + ident


def _count_blocks(sd: Mapping[str, Any], probe: str) -> int:
    n = 0
    while f"feats.{n}.{probe}" in sd:
        n += 1
    return n


def _scale_from(sd: Mapping[str, Any], key: str) -> int | None:
    out_ch = sd[key].shape[0]
    for s in (1, 2, 3, 4, 8):
        if 3 * s * s == out_ch:
            return s
    return None


def detect_safmn(sd: Mapping[str, Any]) -> dict[str, Any] | None:
    if "feats.0.norm1.weight" not in sd or "feats.0.safm.aggr.weight" not in sd or "to_img.0.weight" not in sd:
        return None
    return _config(sd)


def detect_ntire23(sd: Mapping[str, Any]) -> dict[str, Any] | None:
    if "norm.gamma" not in sd or "feats.0.safm.aggr.weight" not in sd or "to_img.0.weight" not in sd:
        return None
    return _config(sd)


def _config(sd: Mapping[str, Any]) -> dict[str, Any] | None:
    scale = _scale_from(sd, "to_img.0.weight")
    if scale is None or "to_feat.weight" not in sd or "feats.0.ccm.ccm.0.weight" not in sd:
        return None
    dim = sd["to_feat.weight"].shape[0]
    return {
        "scale": scale,
        "dim": dim,
        "n_blocks": _count_blocks(sd, "safm.aggr.weight"),
        "ffn_scale": sd["feats.0.ccm.ccm.0.weight"].shape[0] / dim,
    }
