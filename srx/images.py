"""Reading and writing images, through one decoder: srx reads PNG, JPEG, WebP, BMP and
TIFF (srx.filekinds.IMAGE_SUFFIXES, DECODERS here) and writes PNG, JPEG and WebP (FORMATS).

Decoded images are float32 in [0, 1]: `rgb` (H, W, 3), with grayscale replicated to three
channels and `gray=True`, and `alpha` (H, W) or None. Handled on the way in: EXIF
orientation (applied), palette and 1-bit images (expanded), CMYK / YCbCr (converted to
RGB), 16-bit PNG in every colour type (Pillow reads 16-bit RGB(A) PNG only as 8-bit, so
srx decodes those samples itself, with Pillow's own PNG decoder, see `_read_png16`), and
Pillow's decompression-bomb limit (an error, never a warning).
On the way out 16-bit stays 16-bit (PNG), alpha and ICC profiles are kept, and files are
written atomically (srx.fileio).
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srx.errors import BadInput, first_line
from srx.fileio import atomic_path

# What srx writes, by output suffix (Pillow format names); srx reads more (DECODERS).
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXIF_ORIENTATION = 0x0112
# The only Pillow decoders that see a file (Pillow would otherwise try every format it knows);
# their suffixes are srx.filekinds.IMAGE_SUFFIXES. JPEG includes MPO (multi-picture JPEG from cameras).
DECODERS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")
FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "BMP": "BMP", "TIFF": "TIFF"}
OTHER_FORMATS = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)


@dataclass
class LoadedImage:
    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    alpha: np.ndarray | None  # (H, W) float32 in [0, 1]
    gray: bool
    bit_depth: int  # 8 or 16 (per channel, as stored)
    format: str  # PNG, JPEG, WEBP
    icc_profile: bytes | None = None

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


@contextlib.contextmanager
def pixel_limit(path: str | Path) -> Iterator[None]:
    """Pillow's decompression-bomb limit as a BadInput. Pillow raises above twice
    `Image.MAX_IMAGE_PIXELS` but only warns between 1x and 2x, and then decodes the image."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        m = re.search(r"\((\d+) pixels\)", str(e))
        n = f"{int(m.group(1)):,} pixels" if m else "too many pixels"
        raise BadInput(
            f"{path}: {n}, above Pillow's decompression-bomb limit of {Image.MAX_IMAGE_PIXELS:,}: "
            "split or shrink the image first"
        ) from e


def _names(formats: tuple[str, ...]) -> str:
    names = [FORMAT_NAMES[f] for f in formats]
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def read_rgb8(path: str | Path) -> np.ndarray:
    """An image of a dataset or calibration folder as (H, W, 3) uint8 RGB: decoded as
    `read_image` decodes (EXIF orientation applied, 16-bit samples at full precision),
    then gray repeated to three channels, alpha dropped, 16-bit rounded to 8-bit."""
    return quantize(read_image(path).rgb, 8)


def read_image(path: str | Path, *, formats: tuple[str, ...] = DECODERS) -> LoadedImage:
    """Decode an image file with the Pillow decoders in `formats`; BadInput with one line
    saying what is wrong otherwise."""
    from PIL import Image

    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb"):  # unreadable is not damaged: say so before decoding
            pass
    except OSError as e:
        raise BadInput(f"{p}: cannot read it ({e.strerror or e}): check that it exists and its permissions") from e
    if size == 0:
        raise BadInput(f"{p}: empty file (0 bytes): copy or download it again")
    try:
        with pixel_limit(p):
            return _decode(p, formats)
    except Image.UnidentifiedImageError as e:
        raise BadInput(f"{p}: not an image srx can read: give a {_names(formats)} file") from e
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as e:
        raise BadInput(f"{p}: damaged or truncated image ({first_line(e)}): save or download it again") from e


def _decode(p: Path, formats: tuple[str, ...]) -> LoadedImage:
    from PIL import Image, ImageOps

    with p.open("rb") as f:
        head = f.read(33)
    if head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 4, 6):
        return _read_png16(p, head[25])
    other = next((name for magic, name in OTHER_FORMATS if head.startswith(magic)), None)
    if other is not None and other not in formats:
        raise BadInput(f"{p}: {other} images are not supported; use {_names(formats)}")
    with Image.open(p, formats=formats) as im:
        fmt = (im.format or "").upper()
        if fmt not in (*formats, "MPO"):
            raise BadInput(f"{p}: {im.format or 'unknown'} images are not supported; use {_names(formats)}")
        im.load()
        icc = im.info.get("icc_profile")
        im = ImageOps.exif_transpose(im)
        mode = im.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            a = np.asarray(im).astype(np.float32) / 65535.0
            return LoadedImage(np.repeat(a[..., None], 3, axis=2), None, True, 16, fmt, icc)
        if mode == "1":
            im, mode = im.convert("L"), "L"
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif mode == "PA":
            im = im.convert("RGBA")
        elif mode not in ("L", "LA", "RGB", "RGBA"):
            im = im.convert("RGB")  # CMYK, YCbCr, LAB: colour-converted by Pillow
            icc = None if mode == "CMYK" else icc  # a CMYK profile does not describe RGB data
        a = np.asarray(im).astype(np.float32) / 255.0
    fmt = "JPEG" if fmt == "MPO" else fmt
    if im.mode in ("L", "LA"):
        g = a if a.ndim == 2 else a[..., 0]
        alpha = a[..., 1] if im.mode == "LA" else None
        return LoadedImage(np.repeat(g[..., None], 3, axis=2), alpha, True, 8, fmt, icc)
    alpha = a[..., 3] if im.mode == "RGBA" else None
    return LoadedImage(np.ascontiguousarray(a[..., :3]), alpha, False, 8, fmt, icc)


def _read_png16(p: Path, color_type: int) -> LoadedImage:
    """16-bit RGB / RGBA / gray+alpha PNG at full precision, decoded by Pillow's PNG decoder.

    RGB(A): Pillow unfilters the rows correctly (6 or 8 bytes per pixel) and then keeps
    only the high byte of each big-endian sample ('RGB;16B'); asking it to unpack the same
    data as little-endian ('RGB;16L') keeps the other byte. Two decodes, exact samples.
    Gray+alpha (4 bytes per pixel, which Pillow has no low-byte unpacker for): the header
    is rewritten to 8-bit RGBA, which has the same 4 bytes per pixel and row length, so
    the unfiltered bytes come back as (L high, L low, A high, A low).
    """
    from PIL import Image

    data = p.read_bytes()
    if color_type == 4:
        ihdr = bytearray(data[8:33])
        ihdr[16], ihdr[17] = 8, 6  # bit depth, colour type (offsets inside length+type+data)
        crc = zlib.crc32(bytes(ihdr[4:21])) & 0xFFFFFFFF
        patched = data[:8] + bytes(ihdr[:21]) + struct.pack(">I", crc) + data[33:]
        with Image.open(io.BytesIO(patched)) as im:
            im.load()
            b = np.asarray(im).astype(np.uint16)
            orientation = _orientation(im)
        lum, alpha = b[..., 0] * 256 + b[..., 1], b[..., 2] * 256 + b[..., 3]
        lum, alpha = _orient(lum, orientation), _orient(alpha, orientation)
        g = lum.astype(np.float32) / 65535.0
        return LoadedImage(np.repeat(g[..., None], 3, axis=2), alpha.astype(np.float32) / 65535.0, True, 16, "PNG")
    planes = []
    icc, orientation = None, 1
    for raw in ("16B", "16L"):
        with Image.open(p) as im:
            mode = im.mode  # RGB or RGBA
            im.tile = [t._replace(args=f"{mode};{raw}") for t in im.tile]
            im.load()
            planes.append(np.asarray(im).astype(np.uint16))
            icc = im.info.get("icc_profile")
            orientation = _orientation(im)
    v = _orient(planes[0] * 256 + planes[1], orientation).astype(np.float32) / 65535.0
    alpha = np.ascontiguousarray(v[..., 3]) if v.shape[2] == 4 else None
    return LoadedImage(np.ascontiguousarray(v[..., :3]), alpha, False, 16, "PNG", icc)


def _orientation(im: object) -> int:
    try:
        return int(im.getexif().get(EXIF_ORIENTATION, 1))  # type: ignore[attr-defined]
    except (AttributeError, ValueError, TypeError, SyntaxError):
        return 1


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation to an (H, W, ...) array, as PIL.ImageOps.exif_transpose does."""
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.swapaxes(0, 1)
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = a[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a)


def quantize(a: np.ndarray, bit_depth: int) -> np.ndarray:
    """[0, 1] floats -> uint8 / uint16 with rounding to nearest (values outside are clipped)."""
    peak = 255.0 if bit_depth == 8 else 65535.0
    out = np.clip(a, 0.0, 1.0) * peak
    out += 0.5
    return out.astype(np.uint8 if bit_depth == 8 else np.uint16)


def write_image(
    path: str | Path,
    pixels: np.ndarray,
    *,
    bit_depth: int = 8,
    format: str | None = None,
    icc_profile: bytes | None = None,
    quality: int = 95,
) -> Path:
    """Write quantized pixels atomically: (H, W) gray, (H, W, 2) gray+alpha, (H, W, 3) RGB or
    (H, W, 4) RGBA, dtype uint8 or uint16 (`bit_depth`). `format` defaults from the suffix;
    `quality` (1-100) applies to JPEG and WebP."""
    from PIL import Image

    p = Path(path)
    fmt = format or FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise BadInput(f"{p}: unknown output format {p.suffix or '(none)'}; use .png, .jpg or .webp")
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if fmt == "JPEG" and channels in (2, 4):
        raise BadInput(f"{p}: JPEG cannot hold transparency; write .png or .webp to keep the alpha channel")
    if bit_depth == 16 and fmt != "PNG":
        pixels, bit_depth = (pixels >> 8).astype(np.uint8), 8  # JPEG and WebP are 8-bit formats
    with atomic_path(p) as tmp:
        if bit_depth == 16 and channels > 1:
            _write_png16(tmp, pixels, icc_profile)
        else:
            if bit_depth == 16:
                im = Image.fromarray(pixels.astype(np.uint16), mode=None)
            else:
                im = Image.fromarray(pixels if channels > 1 else pixels.reshape(pixels.shape[:2]))
            kwargs: dict[str, object] = {"icc_profile": icc_profile} if icc_profile else {}
            if fmt == "JPEG":
                kwargs.update(quality=quality, subsampling=0)
            elif fmt == "WEBP":
                kwargs.update(quality=quality, method=4)
            try:
                im.save(tmp, format=fmt, **kwargs)
            except OSError as e:
                raise BadInput(f"cannot write {p}: {e}; free some space or choose another -o") from e
    return p


def _write_png16(path: Path, pixels: np.ndarray, icc_profile: bytes | None) -> None:
    """16-bit PNG (gray+alpha, RGB or RGBA) with the Sub filter, streamed in row blocks."""
    h, w, c = pixels.shape
    color_type = {2: 4, 3: 2, 4: 6}[c]
    bpp = 2 * c

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    try:
        with open(path, "wb") as f:
            f.write(PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)))
            if icc_profile:
                f.write(chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile)))
            z = zlib.compressobj(6)
            step = max(1, (8 << 20) // (w * bpp + 1))
            for y0 in range(0, h, step):
                raw = np.ascontiguousarray(pixels[y0 : y0 + step], dtype=">u2").view(np.uint8).reshape(-1, w * bpp)
                rows = np.empty((raw.shape[0], w * bpp + 1), dtype=np.uint8)
                rows[:, 0] = 1  # Sub: each byte minus the byte one pixel to the left (mod 256)
                rows[:, 1 : bpp + 1] = raw[:, :bpp]
                rows[:, bpp + 1 :] = raw[:, bpp:] - raw[:, :-bpp]
                data = z.compress(rows.tobytes())
                if data:
                    f.write(chunk(b"IDAT", data))
            f.write(chunk(b"IDAT", z.flush()) + chunk(b"IEND", b""))
            f.flush()
    except OSError as e:
        raise BadInput(f"cannot write {path}: {e.strerror or e}; free some space or choose another -o") from e
