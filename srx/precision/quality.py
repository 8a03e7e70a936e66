"""Y-channel PSNR as SR papers report it, for accuracy checks of FP16 / INT8 models.

Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 with R, G, B in [0, 255] (MATLAB
rgb2ycbcr, BT.601 studio range); PSNR = 10 log10(255^2 / MSE) over the Y channel with a
border of `scale` pixels shaved. `quantize=True` is `srx eval`'s reading (srx.metrics:
output clamped and rounded to 8 bits, MATLAB rgb2ycbcr Y rounded to integers);
`quantize=False` keeps floats (smoother, used for the small differences that decide which
layers stay in higher precision).
"""

from __future__ import annotations

import math

import numpy as np

_Y = np.array([65.481, 128.553, 24.966]) / 255.0


def to_y(chw: np.ndarray, *, quantize: bool) -> np.ndarray:
    """(3, H, W) RGB float in [0, 1] -> (H, W) Y in [0, 255] (float64)."""
    if quantize:
        from srx.metrics import rgb_to_y

        rgb8 = np.rint(np.clip(chw.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
        return rgb_to_y(rgb8.transpose(1, 2, 0)).astype(np.float64)
    rgb = np.clip(chw.astype(np.float64), 0.0, 1.0) * 255.0
    return np.tensordot(_Y, rgb, axes=(0, 0)) + 16.0


def mse_y(a: np.ndarray, b: np.ndarray, border: int, *, quantize: bool) -> float:
    ya, yb = to_y(a, quantize=quantize), to_y(b, quantize=quantize)
    if border > 0:
        ya, yb = ya[border:-border, border:-border], yb[border:-border, border:-border]
    return float(np.mean((ya - yb) ** 2))


def psnr_from_mse(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def psnr_y(a: np.ndarray, b: np.ndarray, border: int, *, quantize: bool = True) -> float:
    return psnr_from_mse(mse_y(a, b, border, quantize=quantize))
