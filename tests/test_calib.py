"""Calibration folders: what counts as an image, errors that say what to do, crops and splits."""

from __future__ import annotations

import random

import numpy as np
import pytest
from onnx_models import write_images

from srx.errors import BadInput
from srx.images import read_rgb8
from srx.precision.calib import center_pair, list_images, random_crop_pair, split_images


def test_missing_empty_and_non_image_folders(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        list_images(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(BadInput, match="is a file"):
        list_images(tmp_path / "file.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match="holds no images"):
        list_images(empty)
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(BadInput, match="never at an evaluation set"):
        list_images(empty)


def test_images_are_found_recursively_and_sorted(tmp_path):
    write_images(tmp_path / "b", 2, (40, 40))
    write_images(tmp_path / "a", 1, (40, 40))
    files = list_images(tmp_path)
    assert [f.parent.name for f in files] == ["a", "b", "b"]


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(BadInput, match=r"broken\.png"):
        read_rgb8(bad)


def test_16bit_and_gray_images_become_8bit_rgb(tmp_path):
    from PIL import Image

    arr = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    rgb = read_rgb8(tmp_path / "g16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 64, 3) and rgb.max() > 200


def test_split_holds_images_back_deterministically(tmp_path):
    files = list_images(write_images(tmp_path, 10, (32, 32)))
    a = split_images(files, held_out=3, calibration=100, seed=0)
    b = split_images(files, held_out=3, calibration=100, seed=0)
    assert a == b and not set(a.held_out) & set(a.calibration)
    assert len(a.held_out) == 2 and len(a.calibration) == 8  # at most a quarter is held back
    with pytest.raises(BadInput, match="at least 2 images"):
        split_images(files[:1], held_out=1, calibration=1)


def test_pairs_are_bicubic_lr_of_hr_crops(tmp_path):
    (f,) = list_images(write_images(tmp_path, 1, (150, 110)))
    p = random_crop_pair(f, scale=4, lr_size=24, min_lr=8, rng=random.Random(0))
    assert p is not None and p.lr.shape == (3, 24, 24) and p.hr.shape == (3, 96, 96)
    assert p.lr.dtype == np.float32 and p.lr.min() >= 0 and p.lr.max() <= 1
    # A bicubic LR is close to the box average of its HR block.
    box = p.hr.reshape(3, 24, 4, 24, 4).mean(axis=(2, 4))
    assert np.abs(box - p.lr).mean() < 0.03
    whole = center_pair(f, scale=4, max_lr=1000, min_lr=8)
    assert whole is not None and whole.lr.shape == (3, 27, 37)
    assert random_crop_pair(f, scale=4, lr_size=24, min_lr=40, rng=random.Random(0)) is None
