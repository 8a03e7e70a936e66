"""What a file is, by its name: the suffixes srx reads and writes, defined once, and
the one way srx lists the files of a folder.

Every command that takes "a checkpoint, an ONNX model or an engine" or "images" asks
here, so `srx info`, `export`, `bench`, `upscale`, `eval`, `train` and calibration agree
on what a name means and on which files of a folder they see.
"""

from __future__ import annotations

import os
from pathlib import Path

from srx.errors import BadInput

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors", ".sft")
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
# Images srx reads: the suffixes of the formats srx.images decodes (srx.images.DECODERS:
# PNG, JPEG, WebP, BMP, TIFF). What srx writes is a separate, shorter fact (srx.images.FORMATS).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

SUFFIXES_BY_KIND = {
    "checkpoint": CHECKPOINT_SUFFIXES,
    "onnx": ONNX_SUFFIXES,
    "engine": ENGINE_SUFFIXES,
    "image": IMAGE_SUFFIXES,
}


def file_kind(path: str | Path) -> str | None:
    """'checkpoint', 'onnx', 'engine' or 'image' from the file name; None when srx does not know it."""
    suffix = Path(path).suffix.lower()
    return next((kind for kind, suffixes in SUFFIXES_BY_KIND.items() if suffix in suffixes), None)


def describe_suffix(path: str | Path) -> str:
    """'.jpg', or '(none)' for a name without a suffix: for messages."""
    return Path(path).suffix or "(none)"


def files_in(folder: str | Path, suffixes: tuple[str, ...], *, recursive: bool) -> list[Path]:
    """The files in `folder` whose suffix (any case) is one of `suffixes`, sorted by path.

    One rule for every command: hidden names (starting with '.', which includes macOS's
    `._photo.png` resource forks and folders such as `.git`) are skipped, files and
    sub-folders alike; `recursive` walks sub-folders (symbolic links to folders are not
    followed). A folder that cannot be listed, `folder` or one below it, is a BadInput
    naming it: skipping it would quietly leave images out. Whether `folder` exists, and
    what an empty result means, is each caller's message.
    """
    root = Path(folder)

    def unreadable(e: OSError) -> None:  # os.walk would skip such folders silently
        raise BadInput(f"cannot list {e.filename or root} ({e.strerror or e}): check its permissions") from e

    found: list[Path] = []
    for here, dirs, names in os.walk(root, onerror=unreadable):
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        found.extend(
            p
            for p in (Path(here) / n for n in names)
            if not p.name.startswith(".") and p.suffix.lower() in suffixes and p.is_file()
        )
    return sorted(found)


def image_files(folder: str | Path, *, recursive: bool = False) -> list[Path]:
    """The images (IMAGE_SUFFIXES) in `folder` (and below it if `recursive`), sorted; see `files_in`."""
    return files_in(folder, IMAGE_SUFFIXES, recursive=recursive)
