"""MATLAB-compatible bicubic `imresize`, the resize that SR benchmarks are defined with.

Published SR numbers (SRCNN, VDSR, EDSR, RCAN, SAFMN, ...) make LR images with MATLAB's
`imresize(hr, 1/s, 'bicubic')` and score against them, so an evaluation that resizes any
other way is not comparable. This is written here, in numpy, rather than taken from a
library because none fits: basicsr's port pulls torchvision and opencv (no CPU
torchvision here) and has no uint8 mode; Pillow and OpenCV use other kernels, borders and
no MATLAB-style antialiasing; the small PyPI ports are unmaintained or torch-only.

The algorithm, per dimension (MATLAB `imresize.m`, `contributions`):

    cubic(x) = 1.5|x|^3 - 2.5|x|^2 + 1            for |x| <= 1
             = -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2    for 1 < |x| <= 2,   0 otherwise  (Keys, a = -0.5)
    downscaling (scale < 1) with antialiasing: h(x) = scale * cubic(scale * x), width 4 / scale
    u_i   = i / scale + 0.5 * (1 - 1 / scale)        output pixel i = 1..out, in input coordinates
    left  = floor(u_i - width / 2); taps j = left .. left + ceil(width) + 1
    w_ij  = h(u_i - j) / sum_j h(u_i - j)
    indices outside 1..n are mirrored symmetrically (1 2 .. n n .. 1, period 2n).

The dimension with the smaller scale factor is resized first; on a tie rows (height) go
first, then columns, as in MATLAB (`dimensionOrder` sorts the scales stably).
MATLAB's `imresizemex` keeps the class of its input: for uint8 images it rounds (half away
from zero) and saturates to uint8 after each 1-D pass. `imresize(..., uint8_passes=True)`
reproduces that; it is what makes the published bicubic rows come out exactly.
"""

from __future__ import annotations

import math

import numpy as np

from srx.errors import BadInput


def cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (Keys, a = -0.5); see the module docstring."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def contributions(
    in_length: int, out_length: int, scale: float, antialiasing: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Weights (out, P) and 0-based input indices (out, P) of one 1-D bicubic resize.

    Row i of the result gives output pixel i as sum_k weights[i, k] * input[indices[i, k]].
    """
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        # Stretch the kernel by 1/scale: a low-pass filter matched to the new sampling rate.
        def h(x: np.ndarray) -> np.ndarray:
            return scale * cubic(scale * x)

        kernel_width /= scale
    else:
        h = cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = h(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # Symmetric border: 1-based index j maps into [1..n, n..1] with period 2n.
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    idx = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    # MATLAB drops all-zero tap columns; they add nothing, dropping them only saves work.
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], idx[:, keep]


def _round_uint8(x: np.ndarray) -> np.ndarray:
    # MATLAB's double -> uint8 conversion: round half away from zero, saturate to [0, 255].
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def _resize_axis(x: np.ndarray, axis: int, out_length: int, scale: float, antialiasing: bool) -> np.ndarray:
    weights, idx = contributions(x.shape[axis], out_length, scale, antialiasing)
    moved = np.moveaxis(x.astype(np.float64, copy=False), axis, 0)
    # gathered[i, k, ...] = input[idx[i, k], ...]; contract over the taps k.
    gathered = moved[idx]
    out = np.einsum("ik,ik...->i...", weights, gathered)
    return np.moveaxis(out, 0, axis)


def output_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """MATLAB's output size for a scale factor: ceil(scale * size) per dimension.

    A tiny relative slack absorbs the binary error of 1/3 (258 * (1/3) must give 86, not 87).
    """
    return tuple(max(1, math.ceil(v * scale - 1e-9 * v * scale)) for v in (height, width))  # type: ignore[return-value]


def imresize(
    image: np.ndarray,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    antialiasing: bool = True,
    uint8_passes: bool | None = None,
) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) image exactly as MATLAB `imresize(image, scale, 'bicubic')`.

    Give either `scale` (output size ceil(scale * size), the kernel uses `scale` itself) or
    `size` = (height, width) (MATLAB `imresize(image, [h w])`: per-dimension scale out / in).

    uint8 input gives uint8 output. `uint8_passes` (default: True for uint8 input) rounds to
    uint8 between the row and the column pass, as MATLAB does for uint8; False keeps the
    intermediate in float64 (as Python ports such as basicsr do). Float input stays float64
    with no rounding and no clipping.
    """
    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise BadInput(f"imresize needs an (H, W) or (H, W, C) image, got shape {image.shape}")
    if (scale is None) == (size is None):
        raise BadInput("imresize needs exactly one of scale or size")
    if size is not None:
        out_h, out_w = size
        if out_h < 1 or out_w < 1:
            raise BadInput(f"imresize output size must be positive, got {size}")
        scale_h, scale_w = out_h / image.shape[0], out_w / image.shape[1]
    else:
        if not (scale is not None and scale > 0 and math.isfinite(scale)):
            raise BadInput(f"imresize scale must be a positive number, got {scale}")
        out_h, out_w = output_size(image.shape[0], image.shape[1], scale)
        scale_h = scale_w = scale
    is_uint8 = image.dtype == np.uint8
    if uint8_passes is None:
        uint8_passes = is_uint8
    # MATLAB resizes the dimension with the smaller scale first (rows on a tie; sort is stable).
    passes = [(0, out_h, scale_h), (1, out_w, scale_w)]
    if scale_w < scale_h:
        passes.reverse()
    (ax1, n1, s1), (ax2, n2, s2) = passes
    x = _resize_axis(image, ax1, n1, s1, antialiasing)
    if uint8_passes:
        x = _round_uint8(x)
    x = _resize_axis(x, ax2, n2, s2, antialiasing)
    return _round_uint8(x) if is_uint8 else x
