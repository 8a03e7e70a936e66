"""MATLAB-compatible bicubic imresize: hand-derived values, a MATLAB example, invariants."""

from __future__ import annotations

import numpy as np
import pytest

from srx.errors import BadInput
from srx.imresize import contributions, cubic, imresize, output_size


def smooth_image(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A natural-looking uint8 test image: a few random low-frequency sinusoids."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, channels))
    for c in range(channels):
        for _ in range(4):
            fy, fx, phase = rng.uniform(0.02, 0.3), rng.uniform(0.02, 0.3), rng.uniform(0, 2 * np.pi)
            img[..., c] += np.sin(fy * y + fx * x + phase)
    img = (img - img.min()) / (img.max() - img.min())
    return np.rint(img * 255).astype(np.uint8)


def test_cubic_kernel_values():
    # Keys a = -0.5: k(0) = 1, k(+-1) = k(+-2) = 0, k(0.5) = 0.5625, k(1.5) = -0.0625.
    x = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5, -1.5])
    np.testing.assert_allclose(cubic(x), [1, 0.5625, 0, -0.0625, 0, 0, 0.5625, -0.0625], atol=1e-15)


def test_hand_derived_upscale_x2_of_two_pixels():
    # Derived by hand from MATLAB's formulas: u = i/2 + 1/4, taps at distances
    # 1.75, 0.75, 0.25, 1.25 -> weights -0.0234375, 0.2265625, 0.8671875, -0.0703125, and the
    # symmetric border maps taps -1, 0 -> pixels 2, 1. For [0, 1] that gives exact dyadic values.
    out = imresize(np.array([[0.0, 1.0]]), 2.0)
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out, [[-0.09375, 0.203125, 0.796875, 1.09375]] * 2, atol=1e-15)


def test_matlab_example_4x4_to_3x3():
    # MATLAB: imresize(reshape(0:15, 4, 4)', [3 3]) (bicubic, antialiasing); the values are the
    # MATLAB output quoted in the docstring of sanghyun-son/bicubic_pytorch (4 decimals), except
    # its 6.1505, a typo: the input is 4 row + col, so the output is 4 R(row) + R(col) for one
    # 1-D resize R, and out[1, 0] = 4 * 1.5 + out[0, 0] / 5 = 6.1501 (and 15 - 8.8499).
    x = np.arange(16, dtype=np.float64).reshape(4, 4)
    expected = [[0.7506, 2.1004, 3.4503], [6.1501, 7.5000, 8.8499], [11.5497, 12.8996, 14.2494]]
    np.testing.assert_allclose(imresize(x, size=(3, 3)), expected, atol=6e-5)
    np.testing.assert_allclose(imresize(x, 0.75), expected, atol=6e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_identity_at_scale_1(dtype):
    img = smooth_image(17, 23).astype(dtype)
    out = imresize(img, 1.0)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2.0, 3.0, 4.0])
def test_constant_image_stays_constant(scale):
    img = np.full((17, 23, 3), 77, dtype=np.uint8)
    np.testing.assert_array_equal(imresize(img, scale), 77)
    np.testing.assert_allclose(imresize(img.astype(np.float64) / 255, scale), 77 / 255, rtol=1e-13)


@pytest.mark.parametrize(
    ("h", "w", "scale", "expected"),
    [
        (17, 23, 1 / 2, (9, 12)),
        (17, 23, 1 / 3, (6, 8)),
        (17, 23, 1 / 4, (5, 6)),
        (258, 255, 1 / 3, (86, 85)),  # 258 * (1/3) is 85.99999999999999 in binary: still 86
        (17, 23, 3.0, (51, 69)),
    ],
)
def test_output_shape_is_matlab_ceil(h, w, scale, expected):
    assert output_size(h, w, scale) == expected
    assert imresize(smooth_image(h, w, 1)[..., 0], scale).shape == expected


@pytest.mark.parametrize("scale", [1 / 2, 1 / 4])
def test_linear_ramp_is_reproduced_away_from_borders(scale):
    # Both the cubic kernel and its stretched antialiasing version reproduce linear functions.
    h = 64
    ramp = np.repeat((0.3 * np.arange(h, dtype=np.float64) + 5)[:, None], 5, axis=1)
    out = imresize(ramp, scale)
    u = np.arange(1, out.shape[0] + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinate
    inner = slice(int(3 / scale), out.shape[0] - int(3 / scale))
    np.testing.assert_allclose(out[inner, 0], 0.3 * (u[inner] - 1) + 5, atol=1e-12)


def test_mirror_symmetry():
    img = smooth_image(24, 36).astype(np.float64)
    for scale in (1 / 3, 1 / 4, 2.0):
        np.testing.assert_allclose(imresize(img[::-1, ::-1], scale), imresize(img, scale)[::-1, ::-1], atol=1e-10)


def test_weights_sum_to_one_and_indices_stay_inside():
    for n_in, n_out, scale in ((17, 6, 1 / 3), (5, 20, 4.0), (1, 4, 4.0), (23, 6, 1 / 4)):
        w, idx = contributions(n_in, n_out, scale)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-14)
        assert idx.min() >= 0 and idx.max() < n_in


def test_uint8_passes_round_between_the_two_passes():
    img = smooth_image(33, 41)
    rounded = imresize(img, 1 / 3)  # MATLAB for uint8: rounds after the row pass
    floating = imresize(img, 1 / 3, uint8_passes=False)
    assert rounded.dtype == floating.dtype == np.uint8
    # By hand from the 1-D contributions: row pass, round half up, column pass, round.
    wr, ir = contributions(33, 11, 1 / 3)
    wc, ic = contributions(41, 14, 1 / 3)
    rows = np.floor(np.einsum("ik,ikwc->iwc", wr, img[ir].astype(np.float64)) + 0.5)
    cols = np.einsum("jk,hjkc->hjc", wc, rows[:, ic])
    np.testing.assert_array_equal(rounded, np.clip(np.floor(cols + 0.5), 0, 255).astype(np.uint8))
    diff = np.abs(rounded.astype(int) - floating.astype(int))
    assert diff.max() <= 1 and diff.any()


def test_uint8_output_saturates():
    step = np.zeros((8, 8), dtype=np.uint8)
    step[:, 4:] = 255
    out = imresize(step, 3.0)  # bicubic overshoots at the edge; uint8 clips it
    ref = imresize(step.astype(np.float64), 3.0)
    assert ref.min() < 0 and ref.max() > 255
    assert out.min() == 0 and out.max() == 255


@pytest.mark.parametrize(("kwargs", "shape"), [({"scale": 0.0}, (4, 4)), ({}, (4, 4)), ({"scale": 2.0}, (4,))])
def test_bad_arguments(kwargs, shape):
    with pytest.raises(BadInput):
        imresize(np.zeros(shape), **kwargs)
