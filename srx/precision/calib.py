"""Calibration data: LR/HR pairs cut from a folder of images (never from evaluation sets).

Each image gives one random crop; the LR crop is the HR crop downscaled by the model's
scale with srx.imresize (MATLAB-exact bicubic, uint8), the same LR that `srx eval` makes,
so calibration sees the input distribution the model is scored on. A deterministic,
seeded share of the images is held back from calibration and tuning and only used to
report the accuracy of the result.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srx.errors import BadInput
from srx.filekinds import IMAGE_SUFFIXES, image_files
from srx.images import read_rgb8


@dataclass(frozen=True)
class Pair:
    """One LR/HR example: lr (3, h, w) and hr (3, s*h, s*w), float32 RGB in [0, 1]."""

    name: str
    lr: np.ndarray
    hr: np.ndarray


def list_images(folder: str | Path) -> list[Path]:
    """Image files under `folder` (recursively, hidden ones skipped: srx.filekinds.image_files), sorted;
    BadInput if there are none."""
    d = Path(folder)
    if not d.exists():
        raise BadInput(f"calibration folder {d} does not exist: give a folder of training images (--calib-dir)")
    if not d.is_dir():
        raise BadInput(f"--calib-dir {d} is a file, not a folder: give a folder of training images")
    files = image_files(d, recursive=True)
    if not files:
        raise BadInput(
            f"calibration folder {d} holds no images ({', '.join(IMAGE_SUFFIXES)}): "
            "point --calib-dir at training images such as T91 or BSD200, never at an evaluation set"
        )
    return files


# Benchmark sets that SR papers score on: calibrating on them tunes the INT8 ranges to the
# test images. Recognised by a folder name on the way to the images, or by their file names.
EVALUATION_SETS = ("set5", "set14", "b100", "bsd100", "urban100", "manga109", "general100", "div2k_valid")
EVALUATION_IMAGES = {
    "Set5": frozenset(["baby", "bird", "butterfly", "head", "woman"]),
    "Set14": frozenset(
        [
            "baboon",
            "barbara",
            "bridge",
            "coastguard",
            "comic",
            "face",
            "flowers",
            "foreman",
            "lenna",
            "man",
            "monarch",
            "pepper",
            "ppt3",
            "zebra",
        ]
    ),
}


def evaluation_set(folder: str | Path, files: list[Path]) -> str | None:
    """The name of the evaluation set `folder` looks like (by folder or image names), else None."""
    root = Path(folder).resolve()
    names = {part.lower() for part in root.parts}
    names |= {part.lower() for f in files for part in f.resolve().relative_to(root).parts[:-1]}
    named = next((n for n in EVALUATION_SETS if n in names), None)
    if named is not None:
        return next((k for k in EVALUATION_IMAGES if k.lower() == named), named)
    stems = {f.stem.lower() for f in files}
    return next((name for name, images in EVALUATION_IMAGES.items() if len(images & stems) >= len(images) - 1), None)


def evaluation_set_warning(folder: str | Path, files: list[Path]) -> str:
    found = evaluation_set(folder, files)
    if found is None:
        return ""
    return (
        f"--calib-dir {folder} looks like the {found} evaluation set: calibrating on it tunes INT8 to the images it "
        "is scored on, so its scores are no longer a fair measure; calibrate on training images (T91, BSD200, DIV2K train)"
    )


def bicubic_down(hr: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (H/s, W/s, 3) uint8, MATLAB imresize bicubic (H, W multiples of s)."""
    from srx.imresize import imresize

    return imresize(hr, 1 / scale)


def to_chw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32) / 255.0


@dataclass
class CalibrationSplit:
    calibration: list[Path]
    held_out: list[Path]


def split_images(files: list[Path], *, held_out: int, calibration: int, seed: int = 0) -> CalibrationSplit:
    """A seeded split: `held_out` images for reporting, up to `calibration` others for calibration."""
    if len(files) < 2:
        raise BadInput(
            f"calibration needs at least 2 images (one to calibrate on, one held back to measure accuracy); found {len(files)}: add training images"
        )
    order = list(files)
    random.Random(seed).shuffle(order)
    n_held = max(1, min(held_out, len(order) // 4 or 1))
    return CalibrationSplit(calibration=sorted(order[n_held : n_held + calibration]), held_out=sorted(order[:n_held]))


def random_crop_pair(path: Path, *, scale: int, lr_size: int, min_lr: int, rng: random.Random) -> Pair | None:
    """A random HR crop of (scale*lr_size)^2 (smaller if the image is) and its bicubic LR.

    None if the image is too small for the model's minimum LR size.
    """
    img = read_rgb8(path)
    h, w = img.shape[:2]
    ch = min(lr_size, h // scale) * scale
    cw = min(lr_size, w // scale) * scale
    if ch // scale < min_lr or cw // scale < min_lr:
        return None
    y = rng.randrange(0, h - ch + 1)
    x = rng.randrange(0, w - cw + 1)
    hr = img[y : y + ch, x : x + cw]
    return Pair(path.name, to_chw(bicubic_down(hr, scale)), to_chw(hr))


def center_pair(path: Path, *, scale: int, max_lr: int, min_lr: int) -> Pair | None:
    """The image (centre-cropped to at most max_lr LR pixels a side, mod scale) and its bicubic LR."""
    img = read_rgb8(path)
    h, w = img.shape[:2]
    ch = min(max_lr, h // scale) * scale
    cw = min(max_lr, w // scale) * scale
    if ch // scale < min_lr or cw // scale < min_lr:
        return None
    y, x = (h - ch) // 2, (w - cw) // 2
    hr = img[y : y + ch, x : x + cw]
    return Pair(path.name, to_chw(bicubic_down(hr, scale)), to_chw(hr))


def batches_by_size(pairs: list[Pair], max_batch: int) -> list[list[Pair]]:
    """Group equally sized pairs so they run as one batch."""
    groups: dict[tuple[int, ...], list[Pair]] = {}
    for p in pairs:
        groups.setdefault(p.lr.shape, []).append(p)
    out: list[list[Pair]] = []
    for group in groups.values():
        out += [group[i : i + max_batch] for i in range(0, len(group), max_batch)]
    return out
