"""Y conversion, PSNR and SSIM against hand values and scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_imresize import smooth_image

from srx.errors import BadInput
from srx.metrics import gaussian_window, mod_crop, psnr, rgb_to_y, shave, ssim


def test_rgb_to_y_matches_matlab_on_primaries():
    # MATLAB rgb2ycbcr(uint8(...)) Y: black 16, white 235, red 81, green 145, blue 41.
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(rgb_to_y(rgb), [[16, 235, 81, 145, 41]])


def test_rgb_to_y_is_the_rounded_formula():
    rgb = smooth_image(19, 27)
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    exact = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    y = rgb_to_y(rgb)
    assert y.dtype == np.uint8
    assert np.abs(y - exact).max() <= 0.5 + 1e-9
    np.testing.assert_array_equal(y, np.floor(exact + 0.5).astype(np.uint8))


def test_rgb_to_y_refuses_float():
    with pytest.raises(BadInput):
        rgb_to_y(np.zeros((4, 4, 3)))


def test_mod_crop_and_shave_shapes():
    img = np.zeros((17, 23, 3))
    assert mod_crop(img, 4).shape == (16, 20, 3)
    assert mod_crop(img, 3).shape == (15, 21, 3)
    assert shave(np.zeros((17, 23)), 3).shape == (11, 17)
    with pytest.raises(BadInput):
        shave(np.zeros((6, 30)), 3)


def test_psnr_known_values():
    a = np.zeros((10, 10))
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255), abs=1e-12)  # MSE 1: 48.1308 dB
    assert psnr(a, a) == math.inf
    b = a.copy()
    b[0, 0] = 10  # MSE = 100 / 100 = 1 again
    assert psnr(a, b) == pytest.approx(48.1308036, abs=1e-6)


def test_gaussian_window_is_fspecial():
    g = np.outer(gaussian_window(), gaussian_window())
    assert g.shape == (11, 11) and g.sum() == pytest.approx(1.0)
    assert g[5, 5] == pytest.approx(0.0707, abs=1e-4)  # MATLAB fspecial('gaussian', 11, 1.5) centre


@pytest.mark.parametrize(("h", "w", "seed"), [(37, 53, 0), (11, 11, 1), (64, 48, 2)])
def test_ssim_matches_scikit_image(h, w, seed):
    skm = pytest.importorskip("skimage.metrics")
    a = smooth_image(h, w, 1, seed=seed)[..., 0].astype(np.float64)
    rng = np.random.default_rng(seed)
    b = np.clip(a + rng.normal(0, 8, a.shape), 0, 255).round()
    ref = skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert ssim(a, b) == pytest.approx(ref, abs=1e-12)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_psnr_matches_scikit_image():
    skm = pytest.importorskip("skimage.metrics")
    a = smooth_image(21, 34, 1)[..., 0].astype(np.float64)
    b = smooth_image(21, 34, 1, seed=3)[..., 0].astype(np.float64)
    assert psnr(a, b) == pytest.approx(skm.peak_signal_noise_ratio(a, b, data_range=255), abs=1e-10)


def test_ssim_refuses_tiny_or_mismatched():
    with pytest.raises(BadInput):
        ssim(np.zeros((10, 20)), np.zeros((10, 20)))
    with pytest.raises(BadInput):
        ssim(np.zeros((20, 20)), np.zeros((20, 21)))
