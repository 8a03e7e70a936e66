"""Image-quality metrics as the SR literature computes them (Y channel, MATLAB conventions).

Everything here is plain numpy (no scipy in the base install). SSIM is ~20 lines and is
tested against scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)`; writing it avoids making scikit-image (and
its scipy, lazy-loader, imageio, tifffile) a dependency of `srx eval`.
"""

from __future__ import annotations

import math

import numpy as np

from srx.errors import BadInput

# MATLAB rgb2ycbcr, Y row, for R, G, B in [0, 255] (ITU-R BT.601, studio range 16..235).
_Y_COEFFS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom and right so height and width are multiples of `scale` (MATLAB `modcrop`)."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """Y of MATLAB `rgb2ycbcr` on a uint8 RGB image, as uint8.

        Y = round(16 + (65.481 R + 128.553 G + 24.966 B) / 255),   R, G, B in 0..255

    rounded half away from zero, as MATLAB's `imlincomb` does for uint8 output.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise BadInput(f"rgb_to_y needs an (H, W, 3) uint8 image, got {rgb.dtype} {rgb.shape}")
    x = rgb.astype(np.float64)
    y = _Y_COEFFS[0] * x[..., 0] + _Y_COEFFS[1] * x[..., 1] + _Y_COEFFS[2] * x[..., 2] + 16.0
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)


def shave(image: np.ndarray, border: int) -> np.ndarray:
    """Drop `border` pixels on every side (the SR convention: border = scale)."""
    if border <= 0:
        return image
    if image.shape[0] <= 2 * border or image.shape[1] <= 2 * border:
        raise BadInput(f"image {image.shape[1]}x{image.shape[0]} is too small to crop a {border}-pixel border")
    return image[border:-border, border:-border]


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR = 10 log10(data_range^2 / mean((a - b)^2)), in dB; inf for identical images."""
    _same_shape(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """1-D normalised Gaussian; its outer product is MATLAB `fspecial('gaussian', size, sigma)`."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    # The 2-D Gaussian is separable, so 'valid' filtering is two 1-D passes (rows, then columns).
    n = g.size
    rows = sum(g[k] * x[k : x.shape[0] - n + 1 + k] for k in range(n))
    return sum(g[k] * rows[:, k : rows.shape[1] - n + 1 + k] for k in range(n))


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    data_range: float = 255.0,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> float:
    """Mean SSIM of two single-channel images (Wang et al. 2004, `ssim_index.m`; BasicSR's).

    mu = G * x  (11x11 Gaussian, sigma 1.5, 'valid': no padding)
    sigma_ab = G * (a b) - mu_a mu_b
    SSIM = (2 mu_a mu_b + C1)(2 sigma_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(sigma_a^2 + sigma_b^2 + C2))
    C1 = (k1 L)^2, C2 = (k2 L)^2, L = data_range; the map is averaged.
    """
    _same_shape(a, b)
    if a.ndim != 2:
        raise BadInput(f"ssim needs single-channel (H, W) images, got shape {a.shape}")
    if min(a.shape) < window:
        raise BadInput(f"image {a.shape[1]}x{a.shape[0]} is smaller than the {window}x{window} SSIM window")
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    g = gaussian_window(window, sigma)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a**2
    var_b = _filter_valid(b * b, g) - mu_b**2
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def _same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise BadInput(f"images differ in shape: {a.shape} vs {b.shape}")
