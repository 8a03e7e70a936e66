"""Natural-looking synthetic images for verification (numpy only, seeded).

Uniform noise is a poor test input for trained SR networks: it is far from anything
they saw in training and drives some of them (SAFMN++) to huge activations. These
images have what photos have: smooth shading with correlated colour channels, sharp
edges (rectangles, discs, a straight horizon) and a little fine texture.
"""

from __future__ import annotations

import numpy as np

# numpy imports numpy.random on first use. Imported here instead, with this module: a Ctrl-C
# that landed inside that first import, in the middle of `srx export`'s verification, was
# lost in numpy's module initialisation and the export ran to the end (exit 0).
from numpy.random import default_rng


def natural_image(height: int, width: int, *, batch: int = 1, seed: int = 0) -> np.ndarray:
    """(batch, 3, height, width) float32 RGB in [0, 1]; the same seed gives the same images."""
    rng = default_rng(seed)
    out = np.empty((batch, 3, height, width), dtype=np.float32)
    for n in range(batch):
        out[n] = _one_image(rng, height, width)
    return out


def _one_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    yy, xx = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    luma = 0.25 + 0.5 * _smooth_field(rng, height, width, cells=6)
    tint = 0.15 * np.stack([_smooth_field(rng, height, width, cells=3) - 0.5 for _ in range(3)])
    img = luma[None] + tint

    # A straight "horizon" edge at a random angle.
    angle = rng.uniform(0, np.pi)
    side = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) > rng.uniform(-0.2, 0.2)
    img = np.where(side[None], img * rng.uniform(0.6, 0.9), img)

    for _ in range(int(rng.integers(3, 7))):
        colour = rng.uniform(0.05, 0.95, size=(3, 1, 1))
        if rng.random() < 0.5:
            y0, x0 = rng.uniform(0, 0.9, size=2)
            h, w = rng.uniform(0.05, 0.4, size=2)
            mask = (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)
        else:
            cy, cx, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.03, 0.25)
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        shade = 0.85 + 0.15 * _smooth_field(rng, height, width, cells=2)
        img = np.where(mask[None], colour * shade[None], img)

    img = img + rng.normal(0.0, 0.015, size=img.shape)  # sensor-like fine texture
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _smooth_field(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Random values on a coarse (cells+1)^2 grid, linearly interpolated: in [0, 1]."""
    grid = rng.random((cells + 1, cells + 1))
    return _interp_matrix(height, cells) @ grid @ _interp_matrix(width, cells).T


def _interp_matrix(n: int, cells: int) -> np.ndarray:
    """(n, cells+1) weights of 1-D linear interpolation from cells+1 knots to n samples."""
    pos = np.linspace(0, cells, n)
    lo = np.minimum(np.floor(pos).astype(int), cells - 1)
    frac = pos - lo
    m = np.zeros((n, cells + 1))
    m[np.arange(n), lo] = 1 - frac
    m[np.arange(n), lo + 1] = frac
    return m
