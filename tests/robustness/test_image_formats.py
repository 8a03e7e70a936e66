"""Unusual but valid images must work in `srx upscale` and keep what they are.

CMYK JPEG (converted to RGB, as docs say: the model is RGB), 16-bit PNG (RGB, gray,
gray+alpha: stay 16-bit), 8-bit grayscale (stays one channel), alpha (RGBA and LA PNG,
RGBA WebP, palette with transparency: stays transparent). One srx run over a folder of
all of them; each output is checked for format, mode, bit depth, size and content.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error
from PIL import Image
from robust import run_inprocess, save_checkpoint, tiny_model

from srx.bench.inputs import synthetic_image
from srx.images import read_image, write_image

H, W = 20, 26


def _rgb8() -> np.ndarray:
    return (synthetic_image(H, W, 4).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)


def _rgb16() -> np.ndarray:
    return (synthetic_image(H, W, 5).transpose(1, 2, 0) * 65535 + 0.5).astype(np.uint16)


def _alpha(dtype=np.uint8) -> np.ndarray:
    peak = np.iinfo(dtype).max
    return (np.linspace(0, 1, W)[None].repeat(H, 0) * peak + 0.5).astype(dtype)


def _png16_gray(path, values: np.ndarray) -> None:
    """A 16-bit grayscale PNG written by hand (filter 0), so the test does not depend on srx's writer."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)
    ihdr = struct.pack(">IIBBBBB", W, H, 16, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def upscaled(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    src, out = root / "in", root / "out"
    src.mkdir()
    rgb = _rgb8()
    Image.fromarray(rgb).convert("CMYK").save(src / "cmyk.jpg", quality=95)
    write_image(src / "rgb16.png", _rgb16(), bit_depth=16)
    _png16_gray(src / "gray16.png", _rgb16()[..., 1])
    write_image(src / "la16.png", np.dstack([_rgb16()[..., 0], _alpha(np.uint16)]), bit_depth=16)
    Image.fromarray(rgb).convert("L").save(src / "gray.png")
    Image.fromarray(np.dstack([rgb, _alpha()])).save(src / "rgba.png")
    Image.fromarray(np.dstack([rgb[..., 0], _alpha()])).convert("LA").save(src / "la.png")
    Image.fromarray(np.dstack([rgb, _alpha()])).save(src / "rgba.webp", lossless=True)
    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    pal.save(src / "palette.png", transparency=0)
    model = tiny_model()
    weights = save_checkpoint(root / "tiny.pth", model)
    result = run_inprocess("upscale", str(src), "-o", str(out), "--weights", str(weights), "--backend", "torch")
    return src, out, model, result


def test_every_format_is_upscaled(upscaled):
    src, out, _, result = upscaled
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "srx: error" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in src.iterdir())


@pytest.mark.parametrize(
    ("name", "fmt", "mode", "bit_depth", "alpha"),
    [
        ("cmyk.jpg", "JPEG", "RGB", 8, False),
        ("rgb16.png", "PNG", "RGB", 16, False),
        ("gray16.png", "PNG", "I;16", 16, False),
        ("la16.png", "PNG", "LA", 16, True),
        ("gray.png", "PNG", "L", 8, False),
        ("rgba.png", "PNG", "RGBA", 8, True),
        ("la.png", "PNG", "LA", 8, True),
        ("rgba.webp", "WEBP", "RGBA", 8, True),
        ("palette.png", "PNG", "RGBA", 8, True),
    ],
)
def test_format_properties_are_kept(upscaled, name, fmt, mode, bit_depth, alpha):
    src, out, _, result = upscaled
    assert result.returncode == 0, result.stderr
    with Image.open(out / name) as im:
        assert im.format == fmt
        assert im.size == (2 * W, 2 * H)
        if fmt == "PNG":
            ihdr_depth = (out / name).read_bytes()[24]
            assert ihdr_depth == bit_depth, f"{name}: {ihdr_depth}-bit, expected {bit_depth}-bit"
        if bit_depth == 8 or name == "gray16.png":
            assert im.mode == mode
    back = read_image(out / name)
    assert back.bit_depth == bit_depth and (back.alpha is not None) == alpha
    assert back.gray == (mode in ("L", "LA", "I;16"))
    if alpha:  # the mask is upscaled (bicubic), not dropped or inverted
        source = read_image(src / name).alpha
        assert source is not None and source.min() < 0.1 and source.max() > 0.9
        nearest = source.repeat(2, axis=0).repeat(2, axis=1)
        assert np.abs(back.alpha - nearest).mean() < 0.1


@pytest.mark.parametrize("name", ["cmyk.jpg", "rgb16.png", "rgba.png"])
def test_pixels_are_the_model_output(upscaled, name):
    """Content check: the output is the model applied to the RGB that Pillow decodes."""
    src, out, model, _ = upscaled
    lr = read_image(src / name).rgb
    with torch.inference_mode():
        ref = model(torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1)))[None])[0]
    ref = np.clip(ref.numpy().transpose(1, 2, 0), 0, 1)
    got = read_image(out / name).rgb
    tol = 3 / 255 if name.endswith(".jpg") else 1 / 255  # JPEG re-encoding at quality 95
    assert np.abs(got - ref).mean() < tol


def test_a_cmyk_jpeg_as_single_output_refuses_nothing(upscaled, tmp_path):
    src, _, _, _ = upscaled
    weights = save_checkpoint(tmp_path / "w.pth", tiny_model())
    ok = run_inprocess("upscale", str(src / "cmyk.jpg"), "-o", str(tmp_path / "c.png"), "--weights", str(weights))
    assert ok.returncode == 0, ok.stderr
    assert Image.open(tmp_path / "c.png").mode == "RGB"
    bad = run_inprocess("upscale", str(src / "rgba.png"), "-o", str(tmp_path / "a.jpg"), "--weights", str(weights))
    assert "JPEG cannot hold transparency" in assert_one_line_error(bad, 2)
    assert not (tmp_path / "a.jpg").exists()
