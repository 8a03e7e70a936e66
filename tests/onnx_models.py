"""Small srx ONNX models for the precision and engine tests (exported once per session)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

# dim must split into each architecture's channel chunks (4, 4, 3, 2).
TINY_DIMS = {"safmn": 8, "safmn-ntire23": 8, "safmnpp": 12, "safmnpp-light": 8}


@cache
def onnx_bytes(arch: str, *, dim: int | None = None, n_blocks: int = 1, scale: int = 4, opset: int = 19) -> bytes:
    """A random-weight model exported with srx's exporter (simplified, as `srx export` writes it)."""
    from srx.export.model import onnx_from_model, simplify_onnx
    from srx.models import build_model

    model = build_model(arch, scale, dim or TINY_DIMS[arch], n_blocks, seed=0)
    return simplify_onnx(onnx_from_model(model, opset=opset)).SerializeToString()


def write_onnx(folder: Path, arch: str, name: str | None = None, **kw: object) -> Path:
    path = folder / (name or f"{arch}.onnx")
    path.write_bytes(onnx_bytes(arch, **kw))  # type: ignore[arg-type]
    return path


def natural_batch(h: int, w: int, batch: int = 1, seed: int = 0) -> np.ndarray:
    from srx.synthetic import natural_image

    return natural_image(h, w, batch=batch, seed=seed)


def write_images(folder: Path, n: int, size: tuple[int, int] = (96, 96), seed: int = 0) -> Path:
    """n natural-looking RGB PNGs (HR images for calibration tests)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = natural_batch(size[1], size[0], seed=seed + i)[0]
        Image.fromarray(np.rint(img.transpose(1, 2, 0) * 255).astype(np.uint8)).save(folder / f"img{i:02d}.png")
    return folder


def ort_run(model, x: np.ndarray) -> np.ndarray:
    """Run an onnx.ModelProto on the CPU with onnxruntime."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"lr": x})[0]
