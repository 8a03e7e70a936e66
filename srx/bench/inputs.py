"""LR inputs for a benchmark: seeded synthetic natural-looking images, or a folder of images.

Synthetic images are smooth colour fields with soft-edged shapes, oriented texture and a
little noise: statistics closer to photographs than uniform noise, on which trained
SAFMN++ weights blow up (docs/bench.md) and which no deployment ever sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from srx.errors import BadInput

DEFAULT_COUNT = 50  # the paper's protocol: 50 LR inputs
INPUT_SEED = 0  # seed of the synthetic inputs (srx bench --seed)


def synthetic_image(height: int, width: int, seed: int) -> np.ndarray:
    """One (3, H, W) float32 image in [0, 1], a function of (height, width, seed) only."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    # Smooth colour field: bilinear interpolation of a coarse random grid.
    gh, gw = 4 + rng.integers(0, 4), 4 + rng.integers(0, 6)
    grid = rng.uniform(0.1, 0.9, size=(3, gh, gw)).astype(np.float32)
    gy, gx = y * (gh - 1), x * (gw - 1)
    y0, x0 = np.minimum(gy.astype(int), gh - 2), np.minimum(gx.astype(int), gw - 2)
    fy, fx = gy - y0, gx - x0
    img = (
        grid[:, y0, x0] * (1 - fy) * (1 - fx)
        + grid[:, y0 + 1, x0] * fy * (1 - fx)
        + grid[:, y0, x0 + 1] * (1 - fy) * fx
        + grid[:, y0 + 1, x0 + 1] * fy * fx
    )
    # Soft-edged ellipses: edges at a few pixels' width, like a photographed object.
    aspect = width / max(height, 1)
    for _ in range(int(rng.integers(4, 10))):
        cy, cx = rng.uniform(0, 1, 2)
        ry, rx = rng.uniform(0.05, 0.3, 2)
        d = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx * aspect / max(aspect, 1)) ** 2)
        soft = rng.uniform(2.0, 6.0) / min(height, width) / min(ry, rx)
        mask = np.clip((1.0 - d) / soft, 0.0, 1.0)
        colour = rng.uniform(0, 1, size=(3, 1, 1)).astype(np.float32)
        img = img * (1 - mask) + colour * mask
    # Oriented texture (stripes, fabric-like) at moderate contrast.
    for _ in range(3):
        theta, freq = rng.uniform(0, np.pi), rng.uniform(8, 40)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * freq * (x * np.cos(theta) * aspect + y * np.sin(theta)) + phase)
        img = img + rng.uniform(0.01, 0.05) * wave
    img = img + rng.normal(0.0, 0.01, size=img.shape)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def synthetic_inputs(height: int, width: int, count: int = DEFAULT_COUNT, seed: int = INPUT_SEED) -> list[np.ndarray]:
    """`count` (1, 3, H, W) inputs; input i depends only on (H, W, seed + i)."""
    return [synthetic_image(height, width, seed + i)[None] for i in range(count)]


def folder_inputs(folder: str | Path, height: int, width: int, count: int = DEFAULT_COUNT) -> list[np.ndarray]:
    """Up to `count` images from a folder (sorted by name), each scaled to cover HxW
    (bicubic, aspect kept) and centre-cropped to it, as (1, 3, H, W) RGB float32."""
    from PIL import Image

    from srx.filekinds import image_files
    from srx.images import read_image

    files = image_files(Path(folder), recursive=False)
    if not files:
        raise BadInput(f"--images {folder}: no PNG, JPEG, WebP, BMP or TIFF images in it; give a folder of images")
    out = []
    for path in files[:count]:
        img = read_image(path)
        rgb = Image.fromarray((np.clip(img.rgb, 0, 1) * 255.0 + 0.5).astype(np.uint8))
        s = max(width / rgb.width, height / rgb.height)
        size = (max(width, round(rgb.width * s)), max(height, round(rgb.height * s)))
        rgb = rgb.resize(size, Image.Resampling.BICUBIC)
        left, top = (size[0] - width) // 2, (size[1] - height) // 2
        arr = np.asarray(rgb.crop((left, top, left + width, top + height)), dtype=np.float32) / 255.0
        out.append(np.ascontiguousarray(arr.transpose(2, 0, 1)[None]))
    return out
