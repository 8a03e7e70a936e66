"""Tiled inference with bounded memory that reproduces whole-image inference.

Why tiles can be exact (docs/upscale.md has the derivation):
* Every SAFMN-family op is local except adaptive pooling (and GRN, see below). When a
  side is a multiple of the coarsest pooling factor g (8 for SAFMN and SAFMN++, 16 for
  the NTIRE 2023 SAFMN), adaptive max pooling to side // f uses fixed, non-overlapping
  f-pixel windows, and nearest resizing back copies each pooled value to its f x f
  block. A crop whose origin and size are multiples of g then pools exactly the same
  windows as the whole image does over that region.
* The rest is convolutions with zero padding; a tile differs from the whole image only
  within the receptive-field reach of its border. `context(spec)` is that reach, in LR
  pixels; the crop adds it (rounded up to g) on every side that is not an image border.
* GRN (NTIRE 2023 SAFMN) normalises by statistics of the whole image: no tiling is
  exact for it; deviations are measured in docs/upscale.md.

Where exactness is impossible (sides not multiples of g: the whole image pools uneven
windows that depend on its full size; or GRN; or a smaller --tile-overlap), neighbouring
tiles are cross-faded over `BLEND` LR pixels with linear weights that sum to one, so no
seam is visible.

Memory: the output is assembled one row of tiles at a time; only that band is held in
float32, finished rows go straight into the quantized output image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from srx.errors import BadInput
from srx.spec import ModelSpec

BLEND = 16  # LR pixels of cross-fade between tiles when tiling cannot be exact
AUTO_TILE = 512  # tile side used by default for images above AUTO_TILE_PIXELS
AUTO_TILE_PIXELS = 1024 * 1024


def pool_grid(spec: ModelSpec) -> int:
    """Coarsest pooling factor: crops aligned to it pool the same windows as the whole image."""
    return {"safmn": 8, "safmn-ntire23": 16, "safmnpp": 8, "safmnpp-light": 8}[spec.arch]


def context(spec: ModelSpec) -> int:
    """Receptive-field reach of the network in LR pixels (how far an input pixel can move an output pixel).

    3x3 conv: 1. Pooled branch at factor f (adaptive max pool -> depthwise 3x3 at 1/f ->
    nearest back): the output pixel's f-block and its neighbour blocks, 2f - 1. With a
    bilinear resize back (SAFMN++), the two nearest low-res pixels and their 3x3
    neighbours: 2f + 3 (19 for f = 8). Per block, SAFM / SimpleSAFM reach + the CCM's
    3x3 conv, summed over blocks, plus the first and last 3x3 convs:
      safmn          1 + n*((2*8-1) + 1) + 1             = 130 for 8 blocks
      safmn-ntire23  1 + n*((2*16-1) + 1) + 1            = 258 for 8 blocks
      safmnpp        1 + n*(1 + (2*8+3) + 1) + 1         = 128 for 6 blocks
      safmnpp-light  1 + n*(1 + (2*8+3) + 1) + 1         =  44 for 2 blocks
    (the bilinear image skip reaches 1 pixel, inside the above).
    """
    n = spec.n_blocks
    if spec.arch == "safmn":
        per_block = (2 * 8 - 1) + 1
    elif spec.arch == "safmn-ntire23":
        per_block = (2 * 16 - 1) + 1
    else:
        per_block = 1 + (2 * 8 + 3) + 1
    return 1 + n * per_block + 1


def default_overlap(spec: ModelSpec) -> int:
    """Context added around each tile: the reach rounded up to the pooling grid."""
    g = pool_grid(spec)
    return math.ceil(context(spec) / g) * g


@dataclass(frozen=True)
class TilePlan:
    tile: int | None  # core tile side in LR pixels (None: whole image in one piece)
    overlap: int  # context added on each inner side, LR pixels
    grid: int
    exact: bool  # whether tiled output equals whole-image output (up to float rounding)
    blend: int  # cross-fade width in LR pixels (0 when exact)
    reason: str  # why not exact, or ''

    def tiles(self, height: int, width: int) -> int:
        """How many tiles an image of this size is cut into (1: the whole image)."""
        if self.tile is None:
            return 1
        return math.ceil(height / self.tile) * math.ceil(width / self.tile)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tile": self.tile,
            "tile_overlap": self.overlap,
            "grid": self.grid,
            "exact": self.exact,
            "blend": self.blend,
            "note": self.reason,
        }


def check_tile_options(spec: ModelSpec | None, tile: int | None, overlap: int | None) -> None:
    """Refuse a --tile or --tile-overlap that no image could use, before any image is read
    (without a spec, before the model is loaded: what can be said without it)."""
    if overlap is not None and overlap < 0:
        raise BadInput(f"--tile-overlap {overlap}: cannot be negative; use 0 or more (default: the model's reach)")
    if spec is None:
        return
    g = pool_grid(spec)
    minimum = max(g, spec.min_size)
    if tile not in (None, 0, -1) and tile < minimum:
        raise BadInput(
            f"--tile {tile} is smaller than this model's minimum of {minimum} pixels "
            f"({spec.title} pools to 1/{g}): use --tile {minimum} or more"
        )


# A tile that computes this many times the pixels it keeps is mostly context: a warning.
CONTEXT_WORK_WARN = 4.0


def context_warning(spec: ModelSpec, tile: int | None, overlap: int | None) -> str:
    """Why a --tile is slow, when its context dominates ('' otherwise).

    Each tile computes its core plus `overlap` pixels on every inner side (the network's
    reach, 136 for the x4 paper SAFMN): a 128-pixel tile computes 400x400 to keep 128x128,
    about 10x the work of the whole image for the same output."""
    if not tile or tile < 0:
        return ""
    g = pool_grid(spec)
    core = max(g, tile // g * g)
    ov = math.ceil((default_overlap(spec) if overlap is None else overlap) / g) * g
    work = ((core + 2 * ov) / core) ** 2
    if work < CONTEXT_WORK_WARN:
        return ""
    return (
        f"--tile {tile}: each tile also computes {ov} pixels of context on every inner side (the model's reach), "
        f"{core + 2 * ov}x{core + 2 * ov} pixels to keep {core}x{core}: up to {work:.1f}x the work of one piece; "
        f"tiles only bound memory, so use the default (whole images up to 1 MP, {AUTO_TILE} above) or a larger --tile"
    )


def plan_tiling(spec: ModelSpec, height: int, width: int, tile: int | None, overlap: int | None) -> TilePlan:
    """Decide tile size, context and blending for one image. tile=None or 0: automatic
    (whole image up to AUTO_TILE_PIXELS, AUTO_TILE tiles above); tile=-1: never tile."""
    check_tile_options(spec, tile, overlap)
    g = pool_grid(spec)
    if overlap is None:
        overlap = default_overlap(spec)
    if tile == -1 or (not tile and height * width <= AUTO_TILE_PIXELS):
        return TilePlan(None, 0, g, True, 0, "")
    if not tile:
        tile = AUTO_TILE
    tile = tile // g * g
    if tile >= height and tile >= width:
        return TilePlan(None, 0, g, True, 0, "")
    reasons = []
    if spec.arch == "safmn-ntire23":
        reasons.append("GRN normalises over the whole image")
    if height % g or width % g:
        reasons.append(f"{width}x{height} is not a multiple of the pooling grid {g}")
    if overlap < context(spec):
        reasons.append(f"--tile-overlap {overlap} is below the model's reach of {context(spec)} pixels")
    exact = not reasons
    overlap = math.ceil(overlap / g) * g
    blend = 0 if exact else min(BLEND, tile // 2) // 2 * 2
    return TilePlan(tile, overlap, g, exact, blend, "; ".join(reasons))


def _spans(n: int, tile: int) -> list[tuple[int, int]]:
    return [(a, min(n, a + tile)) for a in range(0, n, tile)]


def _ramp(n: int, c0: int, c1: int, e0: int, e1: int, hb: int, scale: int) -> np.ndarray:
    """Weights over output pixels of [e0, e1) (LR coordinates * scale) for core [c0, c1):
    1 inside, linear to 0 across [c0 - hb, c0 + hb) and [c1 - hb, c1 + hb) at inner borders."""
    x = (np.arange(e0 * scale, e1 * scale, dtype=np.float64) + 0.5) / scale
    w = np.ones_like(x)
    if hb > 0 and c0 > 0:
        w = np.minimum(w, np.clip((x - (c0 - hb)) / (2 * hb), 0.0, 1.0))
    if hb > 0 and c1 < n:
        w = np.minimum(w, np.clip(((c1 + hb) - x) / (2 * hb), 0.0, 1.0))
    return w.astype(np.float32)


def _crop_span(n: int, e0: int, e1: int, overlap: int, length: int) -> tuple[int, int]:
    """A window of `length` (or the whole side) containing [e0 - overlap, e1 + overlap), kept
    inside the image. Fixed length means one input shape for every tile (one engine profile,
    one onnxruntime session); extra context is harmless, and starts stay grid-aligned when
    the image side, the tile and the overlap are."""
    if length >= n:
        return 0, n
    start = min(max(0, e0 - overlap), n - length)
    return start, start + length


def tiled_apply(
    lr: np.ndarray,
    forward: Callable[[np.ndarray], np.ndarray],
    scale: int,
    plan: TilePlan,
    emit: Callable[[int, np.ndarray], None],
    progress: Callable[[int], None] | None = None,
) -> int:
    """Run `forward` ((1, 3, h, w) -> (1, 3, sh, sw)) over `lr` (3, H, W) tile by tile and
    pass finished output rows to `emit(first_row, rows)` with rows (r, sW, 3) float32, top
    to bottom. Returns the number of tiles."""
    _, h, w = lr.shape
    if plan.tile is None:
        out = forward(lr[None])[0]
        emit(0, np.ascontiguousarray(out.transpose(1, 2, 0)))
        if progress:
            progress(1)
        return 1
    t, ov, hb = plan.tile, plan.overlap, plan.blend // 2
    length = t + 2 * ov + 2 * hb
    rows, cols = _spans(h, t), _spans(w, t)
    s = scale
    carry: np.ndarray | None = None  # accumulated rows of the previous band that this band overlaps
    for r, (c0y, c1y) in enumerate(rows):
        e0y, e1y = max(0, c0y - hb), min(h, c1y + hb)
        band = np.zeros(((e1y - e0y) * s, w * s, 3), dtype=np.float32)
        if carry is not None:  # it starts where this band starts, at e0y
            band[: carry.shape[0]] += carry
        wy = _ramp(h, c0y, c1y, e0y, e1y, hb, s)
        y0, y1 = _crop_span(h, e0y, e1y, ov, length)
        for c0x, c1x in cols:
            e0x, e1x = max(0, c0x - hb), min(w, c1x + hb)
            x0, x1 = _crop_span(w, e0x, e1x, ov, length)
            out = forward(np.ascontiguousarray(lr[None, :, y0:y1, x0:x1]))[0]
            piece = out[:, (e0y - y0) * s : (e1y - y0) * s, (e0x - x0) * s : (e1x - x0) * s].transpose(1, 2, 0)
            wx = _ramp(w, c0x, c1x, e0x, e1x, hb, s)
            band[:, e0x * s : e1x * s] += piece * (wy[:, None, None] * wx[None, :, None])
            if progress:
                progress(1)
        done = e1y if r == len(rows) - 1 else c1y - hb  # rows the next band does not touch
        emit(e0y * s, band[: (done - e0y) * s])
        carry = band[(done - e0y) * s :]
    return len(rows) * len(cols)
