"""Image IO: 16-bit PNG in every colour type and filter, alpha, gray, palette, CMYK, EXIF orientation, bad files."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from srx.errors import BadInput
from srx.images import quantize, read_image, write_image

RNG = np.random.default_rng(0)


def _png(path, samples: np.ndarray, color_type: int, filters: list[int]) -> None:
    """A 16-bit PNG written by hand with the given per-row filter types (0-4), as libpng may choose."""
    h, w = samples.shape[:2]
    raw = samples.astype(">u2").reshape(h, -1).view(np.uint8).astype(np.int64)
    bpp = 2 * (samples.shape[2] if samples.ndim == 3 else 1)
    out = bytearray()
    prev = np.zeros(raw.shape[1], np.int64)
    for y in range(h):
        ft, row = filters[y % len(filters)], raw[y]
        f = np.zeros_like(row)
        for i in range(len(row)):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ft == 0:
                pred = 0
            elif ft == 1:
                pred = a
            elif ft == 2:
                pred = b
            elif ft == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            f[i] = (row[i] - pred) % 256
        out += bytes([ft]) + bytes(f.astype(np.uint8))
        prev = row

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b"")
    path.write_bytes(data)


@pytest.mark.parametrize(("channels", "color_type"), [(3, 2), (4, 6), (2, 4)])
def test_16bit_png_every_filter_decodes_exactly(tmp_path, channels, color_type):
    a = RNG.integers(0, 65536, size=(7, 9, channels), dtype=np.uint16)
    _png(tmp_path / "x.png", a, color_type, [0, 1, 2, 3, 4, 4, 3])
    img = read_image(tmp_path / "x.png")
    assert img.bit_depth == 16 and img.format == "PNG"
    if channels == 2:
        assert img.gray and np.array_equal(quantize(img.rgb[..., 0], 16), a[..., 0])
    else:
        assert not img.gray and np.array_equal(quantize(img.rgb, 16), a[..., :3])
    if channels in (2, 4):
        assert np.array_equal(quantize(img.alpha, 16), a[..., -1])


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_round_trip(tmp_path, channels):
    shape = (13, 17) if channels == 1 else (13, 17, channels)
    a = RNG.integers(0, 65536, size=shape, dtype=np.uint16)
    write_image(tmp_path / "y.png", a, bit_depth=16)
    img = read_image(tmp_path / "y.png")
    assert img.bit_depth == 16 and img.gray == (channels <= 2)
    color = a if channels == 1 else a[..., 0] if channels == 2 else a[..., :3]
    got = quantize(img.rgb[..., 0] if img.gray else img.rgb, 16)
    assert np.array_equal(got, color)


def test_8bit_modes(tmp_path):
    rgb = RNG.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png", transparency=0)
    img = read_image(tmp_path / "p.png")
    assert img.alpha is not None and not img.gray and img.bit_depth == 8
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg")
    img = read_image(tmp_path / "c.jpg")
    assert img.rgb.shape == (6, 5, 3) and img.format == "JPEG"
    Image.fromarray(rgb[..., 0]).convert("1").save(tmp_path / "b.png")
    assert read_image(tmp_path / "b.png").gray
    la = np.dstack([rgb[..., 0], rgb[..., 1]])
    Image.fromarray(la, mode="LA").save(tmp_path / "la.webp", lossless=True)
    img = read_image(tmp_path / "la.webp")
    assert img.alpha is not None and img.format == "WEBP"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    rgb = RNG.integers(0, 256, size=(6, 10, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")))
    assert np.array_equal(quantize(read_image(tmp_path / "o.png").rgb, 8), expected)
    # The 16-bit path orients with its own code: it must agree with Pillow's.
    _png(tmp_path / "o16.png", rgb.astype(np.uint16) * 257, 2, [0])
    data = (tmp_path / "o16.png").read_bytes()
    exif_chunk = exif.tobytes()
    body = b"eXIf" + exif_chunk
    eXIf = struct.pack(">I", len(exif_chunk)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    (tmp_path / "o16.png").write_bytes(data[:33] + eXIf + data[33:])
    got = quantize(read_image(tmp_path / "o16.png").rgb, 16)
    assert np.array_equal(got, expected.astype(np.uint16) * 257)


def test_bad_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    Image.fromarray(RNG.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "trunc.png").write_bytes((tmp_path / "ok.png").read_bytes()[:300])
    for name, message in [("empty.png", "empty file"), ("text.png", "not an image"), ("trunc.png", "truncated")]:
        with pytest.raises(BadInput, match=message):
            read_image(tmp_path / name)


def test_decompression_bomb_is_an_error(tmp_path):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    head = chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
    (tmp_path / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + head + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    with pytest.raises(BadInput, match="decompression-bomb"):
        read_image(tmp_path / "bomb.png")


def test_writer_refuses_alpha_in_jpeg_and_is_atomic(tmp_path):
    with pytest.raises(BadInput, match="JPEG cannot hold transparency"):
        write_image(tmp_path / "a.jpg", np.zeros((4, 4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []
    write_image(tmp_path / "g.webp", np.full((4, 4), 7, np.uint8))
    assert Image.open(tmp_path / "g.webp").size == (4, 4)


@pytest.mark.parametrize("color_type", [0, 2])  # 16-bit gray, 16-bit RGB
def test_dataset_images_of_16_bits_are_rounded_to_8_bits_for_eval_and_calibration(tmp_path, color_type):
    """Issue 18: `srx eval` refused a 16-bit gray image that calibration read (with a guess at its
    range), and both truncated 16-bit RGB to its high byte. Now one decoder serves both."""
    import srx.evaluate
    import srx.precision.calib
    from srx.images import read_rgb8

    assert srx.evaluate.read_rgb8 is read_rgb8 and srx.precision.calib.read_rgb8 is read_rgb8
    shape = (6, 7) if color_type == 0 else (6, 7, 3)
    samples = RNG.integers(0, 65536, shape, dtype=np.uint16)
    _png(tmp_path / "x.png", samples, color_type, [0])
    got = read_rgb8(tmp_path / "x.png")
    want = np.floor(samples / 257.0 + 0.5).astype(np.uint8)
    want = np.repeat(want[..., None], 3, axis=2) if color_type == 0 else want
    assert got.dtype == np.uint8 and got.shape == (6, 7, 3)
    np.testing.assert_array_equal(got, want)  # v / 257 is never within float32 error of a half
