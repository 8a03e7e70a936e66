"""One image-suffix list and one folder lister (issue 24): what every command sees in a folder.

srx.filekinds.image_files is the only lister: sorted, hidden names ('.x', macOS '._x.png',
'.git/') skipped everywhere, recursion only where the caller asks, an unreadable sub-folder
an error. Upscale, eval, calibration, training and video use it; these tests hold each of
them to the rule, and check that every suffix on the list is one srx's decoder reads.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from srx.errors import BadInput
from srx.filekinds import IMAGE_SUFFIXES, file_kind, image_files
from srx.images import DECODERS, FORMATS, read_image

PIL_FORMAT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF"}
PIL_FORMAT[".tiff"] = "TIFF"


def _png(path, seed=0, size=(12, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path, format=PIL_FORMAT.get(path.suffix.lower(), "PNG"))
    return rgb


def _tree(root):
    """Images at two depths, hidden files and a hidden folder, and a file that is not an image."""
    for rel in ("b.png", "A.JPG", "c.bmp", "sub/d.tif", "sub/deeper/e.webp", "._b.png", ".f.png", ".git/g.png"):
        _png(root / rel)
    (root / "notes.txt").write_text("not an image")
    return root


def test_every_listed_suffix_is_read_by_the_decoder(tmp_path):
    """IMAGE_SUFFIXES is what srx.images decodes: a file of each suffix comes back pixel-exact."""
    assert {PIL_FORMAT[s] for s in IMAGE_SUFFIXES} == set(DECODERS)
    for suffix in IMAGE_SUFFIXES:
        path = tmp_path / f"x{suffix}"
        rgb = _png(path)
        img = read_image(path)
        assert file_kind(path) == "image"
        if suffix not in (".jpg", ".jpeg", ".webp"):  # lossy formats: only their size is exact
            assert np.array_equal(np.rint(img.rgb * 255).astype(np.uint8), rgb), suffix
        assert img.rgb.shape == (*rgb.shape[:2], 3)
    assert set(FORMATS) < set(IMAGE_SUFFIXES), "srx writes a subset of what it reads"


def test_not_recursive_sorted_and_hidden_skipped(tmp_path):
    root = _tree(tmp_path)
    assert [p.name for p in image_files(root, recursive=False)] == ["A.JPG", "b.png", "c.bmp"]


def test_recursive_walks_visible_folders_only(tmp_path):
    root = _tree(tmp_path)
    found = [p.relative_to(root).as_posix() for p in image_files(root, recursive=True)]
    assert found == ["A.JPG", "b.png", "c.bmp", "sub/d.tif", "sub/deeper/e.webp"]
    assert found == sorted(found)


def test_an_unreadable_sub_folder_is_an_error_not_a_gap(tmp_path, monkeypatch):
    """os.walk skips a folder it cannot list unless told otherwise; the lister says so instead.
    (The permission error is injected: the tests may run as root, who lists a chmod-000 folder.)"""
    root = _tree(tmp_path)
    locked = root / "sub" / "deeper"
    scandir = os.scandir

    def refusing(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    with pytest.raises(BadInput, match=r"cannot list .*deeper \(Permission denied\): check its permissions"):
        image_files(root, recursive=True)
    assert len(image_files(root, recursive=False)) == 3  # not walked, so not an error


def test_calibration_skips_hidden_files(tmp_path):
    """Calibration took macOS's `._x.png` resource forks before (training did not)."""
    from srx.precision.calib import list_images

    _png(tmp_path / "x.png")
    (tmp_path / "._x.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble, not a PNG")
    assert [p.name for p in list_images(tmp_path)] == ["x.png"]
    (tmp_path / "x.png").unlink()
    with pytest.raises(BadInput, match="holds no images"):
        list_images(tmp_path)


def test_training_calibration_and_eval_see_the_same_files(tmp_path):
    from srx.evaluate import hr_images
    from srx.precision.calib import list_images
    from srx.train.data import list_training_images

    root = _tree(tmp_path)
    assert list_images(root) == list_training_images(root) == image_files(root, recursive=True)
    assert hr_images(root) == image_files(root, recursive=False)  # eval: the folder itself (or HR/)


def test_video_folders_follow_the_same_rule(tmp_path):
    from srx.video import video_files

    for name in ("b.mp4", "a.MKV", "._a.mp4", ".c.mov", "sub/d.mp4", "e.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in video_files(tmp_path)] == ["a.MKV", "b.mp4"]


def test_upscale_reads_bmp_and_tiff_and_writes_them_as_png(tmp_path):
    """A deliberate change (issue 24): upscale reads every format srx reads; as it does not
    write BMP or TIFF, those inputs in a folder become PNG (lossless) outputs."""
    from srx.upscale import OutputOptions, plan_jobs

    for name in ("a.bmp", "b.tif", "c.png", "d.jpg", "._e.png"):
        _png(tmp_path / "in" / name)
    plan = plan_jobs([str(tmp_path / "in")], str(tmp_path / "out"))
    assert [(j.src.name, j.dst.name) for j in plan.jobs] == [
        ("a.bmp", "a.png"),
        ("b.tif", "b.png"),
        ("c.png", "c.png"),
        ("d.jpg", "d.jpg"),
    ]
    plan = plan_jobs([str(tmp_path / "in")], str(tmp_path / "out"), OutputOptions(ext="webp"))
    assert [j.dst.name for j in plan.jobs] == ["a.webp", "b.webp", "c.webp", "d.webp"]


def test_video_output_named_like_an_image_is_refused(tmp_path):
    """-o x.gif / x.bmp for a video names an image (readable or not): one line, before any work."""
    from srx.video.upscale import plan_video_jobs

    (tmp_path / "v.mp4").write_bytes(b"")
    for name in ("o.png", "o.gif", "o.tif"):
        with pytest.raises(BadInput, match=r"srx writes \.mp4, \.mkv, \.webm or \.mov videos"):
            plan_video_jobs([str(tmp_path / "v.mp4")], str(tmp_path / name))
