"""Training pairs: random LR/HR patches from a folder of HR images.

Every image is read once, mod-cropped to the scale and downscaled whole with srx's
MATLAB-exact bicubic (`srx.imresize`, uint8 between passes), exactly the LR that
`srx eval` makes from an HR image. Patches are then cut at aligned positions from the
two, so a training LR patch is the eval protocol's LR, not a bicubic of a crop (which
would differ near the crop's edges).

The batch of iteration k is a pure function of (seed, k): its generator is seeded with
both. Resuming at iteration k therefore sees the same batches as a run that never
stopped, with no sampler state to save.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srx.errors import BadInput
from srx.filekinds import IMAGE_SUFFIXES, image_files
from srx.images import read_rgb8


@dataclass(frozen=True)
class DataSummary:
    """What the training data was, for the checkpoint's JSON."""

    folder: str
    images: int
    skipped_small: list[str]
    pixels: int

    def to_dict(self) -> dict[str, object]:
        return {
            "folder": self.folder,
            "images": self.images,
            "skipped_smaller_than_patch": self.skipped_small,
            "hr_pixels": self.pixels,
        }


def list_training_images(folder: str | Path) -> list[Path]:
    """Image files under `folder`, recursively (T91/ and BSD200/ side by side; hidden ones skipped), sorted."""
    d = Path(folder)
    if not d.exists():
        raise BadInput(f"--data {d} does not exist: give a folder of HR training images")
    if not d.is_dir():
        raise BadInput(f"--data {d} is a file, not a folder: give a folder of HR training images")
    files = image_files(d, recursive=True)
    if not files:
        raise BadInput(f"--data {d} holds no images ({', '.join(IMAGE_SUFFIXES)}): give a folder of HR training images")
    return files


class PatchSampler:
    """Random aligned LR/HR patches with flips and 90-degree rotations.

    `patch` is the LR side; HR patches are `scale` times larger. Images smaller than an HR
    patch are skipped (named in the summary); if none is large enough, BadInput.
    """

    def __init__(self, folder: str | Path, *, scale: int, patch: int, seed: int, progress: object = None) -> None:
        from srx.imresize import imresize
        from srx.metrics import mod_crop

        self.scale, self.patch, self.seed = scale, patch, seed
        files = list_training_images(folder)
        need = patch * scale
        self.lr: list[np.ndarray] = []
        self.hr: list[np.ndarray] = []
        skipped = []
        for f in files:
            hr = mod_crop(read_rgb8(f), scale)
            if min(hr.shape[:2]) < need:
                skipped.append(str(f.relative_to(folder)))
            else:
                self.hr.append(np.ascontiguousarray(hr))
                self.lr.append(imresize(hr, 1 / scale))
            if progress is not None:
                progress.update(1)  # type: ignore[attr-defined]
        if not self.hr:
            big = max(files, key=lambda f: min(read_rgb8(f).shape[:2]))
            h, w = read_rgb8(big).shape[:2]
            raise BadInput(
                f"no image in --data {folder} is at least {need}x{need} (LR patch {patch} x scale {scale}); "
                f"the largest is {big.name} ({w}x{h}): use a smaller --patch or larger images"
            )
        # Patches drawn in proportion to the positions an image offers, as with the fixed-size
        # sub-images of DIV2K training: a small image is not sampled as often as a large one.
        counts = np.array([(a.shape[0] - patch + 1) * (a.shape[1] - patch + 1) for a in self.lr], dtype=np.float64)
        self.weights = counts / counts.sum()
        self.summary = DataSummary(
            folder=str(folder),
            images=len(self.hr),
            skipped_small=skipped,
            pixels=int(sum(a.shape[0] * a.shape[1] for a in self.hr)),
        )

    def set_targets(self, targets: list[np.ndarray]) -> None:
        """A second target per image, (sH, sW, 3) float16 in [0, 1]: a teacher's SR of the whole
        LR image (offline distillation). Patches of it are cut and flipped with the HR's."""
        if len(targets) != len(self.hr) or any(t.shape != h.shape for t, h in zip(targets, self.hr, strict=True)):
            raise ValueError("one target of the HR's shape per image is needed")
        self.targets = targets

    def batch(self, iteration: int, batch: int, *, stream: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(lr, hr, target) of one iteration: float32 (N, 3, p, p), (N, 3, s p, s p) in [0, 1], and
        the teacher's patches like hr (None without `set_targets`). `stream` 1 draws patches the
        training iterations never see in that order (for fitting a starting point)."""
        rng = np.random.default_rng([self.seed, stream, iteration])
        p, s = self.patch, self.scale
        targets = getattr(self, "targets", None)
        lrs = np.empty((batch, p, p, 3), np.uint8)
        hrs = np.empty((batch, s * p, s * p, 3), np.uint8)
        tgs = np.empty((batch, s * p, s * p, 3), np.float16) if targets is not None else None
        picks = rng.choice(len(self.lr), size=batch, p=self.weights)
        for n, i in enumerate(picks):
            lr, hr = self.lr[i], self.hr[i]
            y = int(rng.integers(0, lr.shape[0] - p + 1))
            x = int(rng.integers(0, lr.shape[1] - p + 1))
            hr_window = (slice(s * y, s * (y + p)), slice(s * x, s * (x + p)))
            crops = [lr[y : y + p, x : x + p], hr[hr_window]]
            if targets is not None:
                crops.append(targets[i][hr_window])
            flip_v, flip_h, transpose = rng.integers(0, 2, size=3)
            if flip_v:
                crops = [c[::-1] for c in crops]
            if flip_h:
                crops = [c[:, ::-1] for c in crops]
            if transpose:  # with the flips: all 8 rotations and reflections of the square
                crops = [c.transpose(1, 0, 2) for c in crops]
            lrs[n], hrs[n] = crops[0], crops[1]
            if tgs is not None:
                tgs[n] = crops[2]
        target = np.ascontiguousarray(tgs.transpose(0, 3, 1, 2), dtype=np.float32) if tgs is not None else None
        return _chw(lrs), _chw(hrs), target


def _chw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
