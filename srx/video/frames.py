"""Frames between FFmpeg and the model, on host arrays: decode to RGB, stage, run, quantize.

Every frame is upscaled exactly as `srx upscale` upscales the same RGB picture saved as a
PNG (tests/test_video.py checks it bit for bit): the same [0, 1] float32 values
(`uint8 / 255`, 16-bit inputs `/ 65535`), the same edge padding below the model's minimum,
the same tiling (srx.tiling, through srx.upscale.upscale_image), the same check for
non-finite outputs and the same rounding (`clip(x, 0, 1) * peak + 0.5`, truncated).

Colour conversion (swscale): YUV -> RGB with bicubic chroma interpolation and accurate
rounding (FFmpeg's fast path repeats each chroma sample, which the model would then
upscale into blocks); RGB -> YUV with bicubic chroma filtering. Both follow the frame's
colour tags (matrix, range), so the output means the same colours as the input.

Without tiles, frames are batched (`--batch N`) and the model's output is quantized
straight into the planes of a planar RGB frame (no transposed copy): at 1280x720 that
transpose cost more than converting the frame to YUV.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from srx.errors import CheckFailed
from srx.images import LoadedImage
from srx.spec import ModelSpec
from srx.tiling import TilePlan, plan_tiling
from srx.upscale import _padded as padded_side  # the image path's padding rule (minimum size, multiple)
from srx.upscale import upscale_image
from srx.video.avlib import require_av

Forward = Callable[[np.ndarray], np.ndarray]  # (N, 3, h, w) float32 -> (N, 3, sh, sw) float32


def rgb_format(bit_depth: int) -> str:
    """The packed RGB format frames are decoded to: 8-bit stays 8-bit, deeper video becomes 16-bit."""
    return "rgb24" if bit_depth <= 8 else "rgb48le"


def decode_flags() -> Any:
    av = require_av()
    i = av.video.reformatter.Interpolation
    return i.BICUBIC | i.ACCURATE_RND | i.FULL_CHR_H_INT


def encode_flags() -> Any:
    return require_av().video.reformatter.Interpolation.BICUBIC


def frame_to_rgb(frame: Any, bit_depth: int, width: int, height: int) -> np.ndarray:
    """A decoded frame as (height, width, 3) uint8 / uint16 RGB, resized to (width, height)
    when the stream changed size mid-way (srx.video.reader)."""
    resize = {} if (frame.width, frame.height) == (width, height) else {"width": width, "height": height}
    return frame.to_ndarray(format=rgb_format(bit_depth), interpolation=decode_flags(), **resize)


def peak(bit_depth: int) -> float:
    return 255.0 if bit_depth <= 8 else 65535.0


def stage(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """(H, W, 3) uint RGB -> (3, H, W) float32 in [0, 1], with srx.images' arithmetic."""
    rgb = pixels.astype(np.float32) / peak(bit_depth)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


@dataclass
class Upscaled:
    """One upscaled frame: planar float32 (3, H, W) straight from the model, or, from the
    tiled path, (H, W, 3) pixels already quantized by srx.upscale.upscale_image."""

    planar: np.ndarray | None = None
    pixels: np.ndarray | None = None


class HostFrames:
    """Model input and output on the host, for every runner (the CUDA path: srx.video.cuda)."""

    def __init__(
        self, forward: Forward, spec: ModelSpec, height: int, width: int, bit_depth: int, *, tile: Any, overlap: Any
    ) -> None:
        self.forward, self.spec, self.h, self.w, self.bit_depth = forward, spec, height, width, bit_depth
        self.ph, self.pw = padded_side(height, spec), padded_side(width, spec)
        self.plan: TilePlan = plan_tiling(spec, self.ph, self.pw, tile, overlap)
        self.tile, self.overlap = tile, overlap

    @property
    def tiled(self) -> bool:
        return self.plan.tile is not None

    def stage(self, pixels: np.ndarray) -> np.ndarray:
        return stage(pixels, self.bit_depth)

    def infer(self, staged: list[np.ndarray]) -> list[Upscaled]:
        """Upscale a batch of staged frames (one model call without tiles; frame by frame,
        tile by tile with them)."""
        if self.tiled:
            return [self._tiled(x) for x in staged]
        x = staged[0][None] if len(staged) == 1 else np.stack(staged)
        if (self.ph, self.pw) != (self.h, self.w):
            x = np.pad(x, ((0, 0), (0, 0), (0, self.ph - self.h), (0, self.pw - self.w)), mode="edge")
        sr = self.forward(x)
        s = self.spec.scale
        return [Upscaled(planar=sr[i, :, : self.h * s, : self.w * s]) for i in range(len(staged))]

    def _tiled(self, x: np.ndarray) -> Upscaled:
        img = LoadedImage(x.transpose(1, 2, 0), None, False, 16 if self.bit_depth > 8 else 8, "PNG")
        pixels, _, _ = upscale_image(img, self.forward, self.spec, tile=self.tile, overlap=self.overlap)
        return Upscaled(pixels=pixels)

    def readback(self, up: Upscaled, width: int, height: int) -> Any:
        """An upscaled frame as an av.VideoFrame of (width, height), the output size (which may
        be one pixel smaller than the model's, srx.video.encoding)."""
        return to_video_frame(up, self.bit_depth, width, height)


def to_video_frame(up: Upscaled, bit_depth: int, width: int, height: int) -> Any:
    av = require_av()
    if up.pixels is not None:
        px = np.ascontiguousarray(up.pixels[:height, :width])
        return av.VideoFrame.from_ndarray(px, format=rgb_format(bit_depth))
    assert up.planar is not None
    return planar_to_frame(up.planar[:, :height, :width], bit_depth)


def check_finite(planar: np.ndarray) -> None:
    if not np.isfinite(planar).all():
        raise nonfinite_error(int(planar.size - np.count_nonzero(np.isfinite(planar))))


def nonfinite_error(count: int) -> CheckFailed:
    return CheckFailed(
        f"the model produced {count} NaN or infinite value(s) in a frame: nothing was written; "
        "check the model (srx bench shows its accuracy against PyTorch)"
    )


def planar_to_frame(planar: np.ndarray, bit_depth: int) -> Any:
    """(3, H, W) float32 RGB -> a planar RGB av.VideoFrame, quantized like srx.images.quantize
    straight into the frame's planes (the array is modified in place)."""
    av = require_av()
    check_finite(planar)
    _, h, w = planar.shape
    fmt, dtype = ("gbrp", np.dtype(np.uint8)) if bit_depth <= 8 else ("gbrp16le", np.dtype("<u2"))
    frame = av.VideoFrame(w, h, fmt)
    top = peak(bit_depth)
    for plane, channel in zip(frame.planes, (1, 2, 0), strict=True):  # FFmpeg's planar RGB is G, B, R
        rows = np.frombuffer(plane, dtype=dtype).reshape(h, plane.line_size // dtype.itemsize)
        x = planar[channel]
        np.clip(x, 0.0, 1.0, out=x)
        x *= top
        x += 0.5
        np.copyto(rows[:, :w], x, casting="unsafe")  # truncation, as astype() in quantize
    return frame
