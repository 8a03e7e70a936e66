"""SAFMN++ (NTIRE 2024 ESR, team23) and light SAFMN++ (AIS 2024 real-time SR).

Both use SimpleSAFM: a 3x3 projection whose first `chunk` channels are pooled to 1/8,
depthwise-convolved, bilinearly resized back, passed through GELU and multiplied with
themselves; the untouched channels come first in the concatenation, then GELU and a
1x1 conv. All convs are bias-free and there is no normalisation.
SAFMN++: block = x + CCM(SimpleSAFM(x)), chunk = dim // 3, bilinear image skip.
Light: block = CCM(SimpleSAFM(x)), chunk = dim // 2, long feature skip, no image skip.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srx.models.layers import adaptive_max_pool, bilinear_resize
from srx.models.safmn import _count_blocks, _scale_from, hidden_width

POOL_FACTOR = 8


class SimpleSAFM(nn.Module):
    def __init__(self, dim: int, chunk: int) -> None:
        super().__init__()
        self.chunk = chunk
        self.proj = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)
        self.dwconv = nn.Conv2d(chunk, chunk, 3, 1, 1, groups=chunk, bias=False)
        self.out = nn.Conv2d(dim, dim, 1, 1, 0, bias=False)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x0, x1 = self.proj(x).split([self.chunk, x.shape[1] - self.chunk], dim=1)
        x2 = self.dwconv(adaptive_max_pool(x0, POOL_FACTOR))
        x2 = self.act(bilinear_resize(x2, (h, w))) * x0
        return self.out(self.act(torch.cat([x1, x2], dim=1)))


class CCMpp(nn.Module):
    """SAFMN++ channel mixer (keys conv1 / conv2)."""

    def __init__(self, dim: int, ffn_scale: float) -> None:
        super().__init__()
        hidden = hidden_width(dim, ffn_scale)
        self.conv1 = nn.Conv2d(dim, hidden, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(hidden, dim, 1, 1, 0, bias=False)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class CCMLight(nn.Module):
    """Light SAFMN++ channel mixer (keys conv.0 / conv.2)."""

    def __init__(self, dim: int, ffn_scale: float) -> None:
        super().__init__()
        hidden = hidden_width(dim, ffn_scale)
        self.conv = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, 1, 1, bias=False), nn.GELU(), nn.Conv2d(hidden, dim, 1, 1, 0, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class BlockPP(nn.Module):
    def __init__(self, dim: int, ffn_scale: float) -> None:
        super().__init__()
        self.conv1 = SimpleSAFM(dim, dim // 3)
        self.conv2 = CCMpp(dim, ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


class BlockLight(nn.Module):
    def __init__(self, dim: int, ffn_scale: float) -> None:
        super().__init__()
        self.conv1 = SimpleSAFM(dim, dim // 2)
        self.conv2 = CCMLight(dim, ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


def _to_img(dim: int, scale: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim, 3 * scale**2, 3, 1, 1, bias=False), nn.PixelShuffle(scale))


class SAFMNPP(nn.Module):
    pool_factors = (POOL_FACTOR,)

    def __init__(self, dim: int = 36, n_blocks: int = 6, ffn_scale: float = 1.5, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1, bias=False)
        self.feats = nn.Sequential(*[BlockPP(dim, ffn_scale) for _ in range(n_blocks)])
        self.to_img = _to_img(dim, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.to_img(self.feats(self.to_feat(x))) + res


class SAFMNPPLight(nn.Module):
    pool_factors = (POOL_FACTOR,)

    def __init__(self, dim: int = 32, n_blocks: int = 2, ffn_scale: float = 1.5, scale: int = 4) -> None:
        super().__init__()
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1, bias=False)
        self.feats = nn.Sequential(*[BlockLight(dim, ffn_scale) for _ in range(n_blocks)])
        self.to_img = _to_img(dim, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_feat(x)
        return self.to_img(self.feats(x) + x)


def _config(sd: Mapping[str, Any], ccm_key: str) -> dict[str, Any] | None:
    if "to_feat.weight" not in sd or "to_img.0.weight" not in sd:
        return None
    scale = _scale_from(sd, "to_img.0.weight")
    if scale is None:
        return None
    dim = sd["to_feat.weight"].shape[0]
    return {
        "scale": scale,
        "dim": dim,
        "n_blocks": _count_blocks(sd, "conv1.proj.weight"),
        "ffn_scale": sd[f"feats.0.{ccm_key}"].shape[0] / dim,
    }


def detect_safmnpp(sd: Mapping[str, Any]) -> dict[str, Any] | None:
    if "feats.0.conv1.proj.weight" not in sd or "feats.0.conv2.conv1.weight" not in sd:
        return None
    return _config(sd, "conv2.conv1.weight")


def detect_light(sd: Mapping[str, Any]) -> dict[str, Any] | None:
    if "feats.0.conv1.proj.weight" not in sd or "feats.0.conv2.conv.0.weight" not in sd:
        return None
    return _config(sd, "conv2.conv.0.weight")
