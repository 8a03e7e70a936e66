"""Building blocks shared by the SAFMN family, and their portable (exportable) forms.

Eager PyTorch uses the official ops. While a model is being exported
(`torch.compiler.is_exporting()`), adaptive max pooling and nearest resizing switch to
formulations that give bit-identical results for every input size, written only with
ops that export with dynamic height and width:

* adaptive max pooling: PyTorch's windows are [floor(i*n/o), ceil((i+1)*n/o)) with
  o = n // f. Every window is at least f and less than 2f long, so it is covered exactly
  by two overlapping windows of length f: one starting at its start, one ending at its
  end. A stride-1 max pool of length f followed by two gathers and a maximum gives the
  window maximum. Separable: rows, then columns.
* nearest resize: PyTorch picks source index min(floor(dst * float32(in/out)), in-1) in
  float32. ONNX Resize(nearest, asymmetric, floor) divides by out/in instead and picks
  a different row for about 3% of sizes (e.g. 28 -> 114); a gather with PyTorch's
  formula is exact everywhere.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def exporting() -> bool:
    return torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()


class LayerNorm2d(nn.Module):
    """Channels-first LayerNorm as in the official SAFMN code (eps 1e-6).

    y = weight * (x - mean_c(x)) / sqrt(var_c(x) + eps) + bias, statistics over the
    channel axis at each pixel. Written out by hand (not F.layer_norm) because that is
    what the official network computes and what the exported graph must match.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    """Global Response Normalization (ConvNeXt-V2), as in the NTIRE 2023 SAFMN.

    g_c = ||x_c||_2 over all pixels; y = gamma * (x * g_c / (mean_c(g) + eps)) + beta + x.
    Depends on the whole image, so tiled inference is not exactly whole-image inference.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=(2, 3), keepdim=True)
        nx = gx / (gx.mean(dim=1, keepdim=True) + self.eps)
        return self.gamma * (x * nx) + self.beta + x


def adaptive_max_pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    """adaptive_max_pool2d(x, (h // factor, w // factor)), exportable at any size."""
    if exporting():
        return portable_adaptive_max_pool(x, factor)
    h, w = x.shape[-2:]
    return F.adaptive_max_pool2d(x, (h // factor, w // factor))


def nearest_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """interpolate(x, size, mode='nearest'), exportable and exact at any size."""
    if exporting():
        return portable_nearest_resize(x, size)
    return F.interpolate(x, size=size, mode="nearest")


def pool_windows(n: int, factor: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end (exclusive) of PyTorch's adaptive pooling windows for o = n // factor:
    [floor(i*n/o), ceil((i+1)*n/o)) for i in 0..o-1."""
    o = n // factor
    i = torch.arange(o, device=device)
    return (i * n) // o, ((i + 1) * n + o - 1) // o


def _window_max(x: torch.Tensor, dim: int, factor: int) -> torch.Tensor:
    kernel = (factor, 1) if dim == 2 else (1, factor)
    sliding = F.max_pool2d(x, kernel, stride=1)
    start, stop = pool_windows(x.shape[dim], factor, x.device)
    return torch.maximum(sliding.index_select(dim, start), sliding.index_select(dim, stop - factor))


def portable_adaptive_max_pool(x: torch.Tensor, factor: int) -> torch.Tensor:
    return _window_max(_window_max(x, 2, factor), 3, factor)


def nearest_indices(n_in: int, n_out: int, device: torch.device | None = None) -> torch.Tensor:
    """PyTorch's nearest source index for each output position, in its float32 arithmetic."""
    scale = torch.tensor(n_in, dtype=torch.float32, device=device) / n_out
    dst = torch.arange(n_out, device=device).to(torch.float32)
    return torch.clamp(torch.floor(dst * scale).to(torch.int64), max=n_in - 1)


def portable_nearest_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h_in, w_in = x.shape[-2:]
    rows = nearest_indices(h_in, size[0], x.device)
    cols = nearest_indices(w_in, size[1], x.device)
    return x.index_select(2, rows).index_select(3, cols)


def bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """interpolate(x, size, 'bilinear', align_corners=False): smooth, so the exported
    Resize(linear, half_pixel) differs only by float rounding."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
