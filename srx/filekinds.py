"""What a file is, by its name: the suffixes srx reads and writes, defined once.

Every command that takes "a checkpoint, an ONNX model or an engine" or "images" asks
here, so `srx info`, `export`, `bench`, `upscale` and `eval` agree on what a name means.
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors", ".sft")
SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
# What `srx upscale` reads and writes.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
# Datasets and calibration folders also hold BMP and TIFF (DIV2K mirrors, Urban100 packs).
DATASET_IMAGE_SUFFIXES = (*IMAGE_SUFFIXES, ".bmp", ".tif", ".tiff")

SUFFIXES_BY_KIND = {
    "checkpoint": CHECKPOINT_SUFFIXES,
    "onnx": ONNX_SUFFIXES,
    "engine": ENGINE_SUFFIXES,
    "image": DATASET_IMAGE_SUFFIXES,
}


def file_kind(path: str | Path) -> str | None:
    """'checkpoint', 'onnx', 'engine' or 'image' from the file name; None when srx does not know it."""
    suffix = Path(path).suffix.lower()
    return next((kind for kind, suffixes in SUFFIXES_BY_KIND.items() if suffix in suffixes), None)


def describe_suffix(path: str | Path) -> str:
    """'.jpg', or '(none)' for a name without a suffix: for messages."""
    return Path(path).suffix or "(none)"
