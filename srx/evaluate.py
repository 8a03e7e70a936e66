"""Dataset evaluation: Y-channel PSNR / SSIM of a super-resolution model, as in the SR literature.

Protocol for a model (BasicSR / EDSR / SAFMN test scripts; MATLAB conventions):

    HR  = mod_crop(RGB uint8, scale)
    LR  = imresize(HR, 1/scale, 'bicubic')            MATLAB-exact, uint8 (or LR_bicubic/X{s}/)
    SR  = model(LR)                                   clamped to [0, 1], rounded to uint8
    score = PSNR, SSIM of rgb2ycbcr-Y(SR) vs Y(HR), `scale` pixels of border cropped

The model is any `Upscaler`: a callable (h, w, 3) uint8 RGB -> (s h, s w, 3) RGB, uint8 or
float in [0, 1]. `upscaler_from_runner` adapts a runner with the srx/runtime contract
`run(lr) -> sr` on (N, 3, H, W) float32 RGB in [0, 1]: that is how exported models are
scored (an srx ONNX file in onnxruntime on the CPU, an engine in TensorRT / TensorRT-RTX).

`bicubic` is the published baseline row (SRCNN's protocol, which the bicubic rows of the SR
tables copy): on Y only, in double, HR Y / 255 -> imresize 1/s -> imresize s -> round to
uint8. Upscaling the uint8 RGB LR with bicubic instead (`bicubic-rgb`) scores 0.01-0.02 dB
lower and does not reproduce the tables; it is the like-for-like baseline for a network.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from srx.errors import BadInput
from srx.filekinds import IMAGE_SUFFIXES, image_files
from srx.images import DECODERS, pixel_limit, read_rgb8
from srx.imresize import imresize
from srx.metrics import mod_crop, psnr, rgb_to_y, shave, ssim
from srx.progress import Progress

if TYPE_CHECKING:
    from torch import nn

    from srx.spec import ModelSpec

Upscaler = Callable[[np.ndarray], np.ndarray]
"""(h, w, 3) uint8 RGB LR -> (s h, s w, 3) RGB SR, uint8 or float in [0, 1]."""


@dataclass(frozen=True)
class ImageScore:
    name: str
    psnr_y: float
    ssim_y: float


@dataclass
class EvalResult:
    dataset: str
    scale: int
    model: str
    images: list[ImageScore]
    protocol: str
    lr_source: str
    model_spec: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def psnr_y(self) -> float:
        return statistics.fmean(s.psnr_y for s in self.images)

    @property
    def ssim_y(self) -> float:
        return statistics.fmean(s.ssim_y for s in self.images)

    def to_dict(self) -> dict[str, Any]:
        return self.to_json()

    def format(self) -> str:
        """What `srx eval` prints: a table per image and the mean."""
        return format_result(self)

    def to_json(self) -> dict[str, Any]:
        """The JSON of docs/cli.md#srx-eval (dataset, scale, model, psnr_y, ssim_y, images) plus provenance."""
        from srx import __version__

        return {
            "dataset": self.dataset,
            "scale": self.scale,
            "model": self.model,
            "psnr_y": _finite_or_none(self.psnr_y),
            "ssim_y": self.ssim_y,
            "images": [{"name": s.name, "psnr_y": _finite_or_none(s.psnr_y), "ssim_y": s.ssim_y} for s in self.images],
            "protocol": self.protocol,
            "lr_source": self.lr_source,
            "border": self.scale,
            "model_spec": self.model_spec,
            "srx_version": __version__,
            **self.extra,
        }


def _finite_or_none(x: float) -> float | None:
    # PSNR of identical images is infinite, which JSON cannot hold: written as null.
    return x if math.isfinite(x) else None


# -- models --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedBicubic:
    """The bicubic row of the SR tables: computed from the HR Y channel, not from an RGB LR image."""

    name: str = "bicubic"

    def y_from_hr(self, hr: np.ndarray, scale: int) -> np.ndarray:
        y = rgb_to_y(hr).astype(np.float64) / 255.0
        up = imresize(imresize(y, 1 / scale), float(scale)) * 255.0
        return np.clip(np.floor(up + 0.5), 0, 255).astype(np.uint8)


def bicubic_upscaler(scale: int) -> Upscaler:
    """MATLAB bicubic upscaling of the uint8 RGB LR (rounded to uint8 between passes, as MATLAB)."""

    def up(lr: np.ndarray) -> np.ndarray:
        return imresize(lr, float(scale))

    return up


def torch_upscaler(model: nn.Module) -> Upscaler:
    """Run a PyTorch SR network on one image at a time, in float32 on the CPU."""
    import torch

    def up(lr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(lr.transpose(2, 0, 1))).float().div_(255.0)[None]
        with torch.inference_mode():
            y = model(x)
        return y[0].permute(1, 2, 0).numpy()

    return up


def upscaler_from_runner(run: Callable[[np.ndarray], np.ndarray]) -> Upscaler:
    """Adapt a runner's `run(lr) -> sr` on (N, 3, H, W) float32 RGB in [0, 1] (srx/runtime)."""

    def up(lr: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(lr.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)
        y = np.asarray(run(x))
        if y.ndim != 4 or y.shape[:2] != (1, 3):
            raise BadInput(f"the model returned shape {y.shape}, expected (1, 3, H, W): is it an RGB SR model?")
        return y[0].transpose(1, 2, 0)

    return up


def to_uint8(sr: np.ndarray) -> np.ndarray:
    """A model output as uint8: float in [0, 1] is clamped, scaled by 255 and rounded (as BasicSR)."""
    if sr.dtype == np.uint8:
        return sr
    x = np.asarray(sr, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise BadInput(f"the model produced {bad} NaN or infinite value(s): it is not usable on this image")
    return np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


# What `--model` may name besides networks: the published bicubic row, and bicubic on the RGB LR.
BASELINES = ("bicubic", "bicubic-rgb")


@dataclass
class ResolvedModel:
    """What `--model` named: a display name, the scale it works at, how to run it.

    A model run by a runtime runner holds its session or engine until `close()` (also a
    context manager)."""

    name: str
    scale: int
    upscaler: Upscaler | PublishedBicubic
    spec: ModelSpec | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    closer: Callable[[], None] | None = None

    def close(self) -> None:
        if self.closer is not None:
            closer, self.closer = self.closer, None
            closer()

    def __enter__(self) -> ResolvedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_model(
    model: str, scale: int | None, *, param_key: str | None = None, backend: str | None = None
) -> ResolvedModel:
    """`bicubic`, `bicubic-rgb`, a checkpoint, an srx ONNX file or an engine -> a runnable model
    and its scale. ONNX files and engines run through srx/runtime runners (`runner_model`), and
    so do networks with a `backend` other than torch (exported by srx for the backend); close
    the result (or use it in a `with` block) to free their sessions."""
    if scale is not None and scale not in (2, 3, 4):
        raise BadInput(f"--scale {scale} is not supported: use 2, 3 or 4")
    if model in BASELINES and param_key is not None:
        raise BadInput(f"--param-key applies to checkpoints, not to {model}: drop it")
    if model in BASELINES and backend is not None:
        raise BadInput(f"--backend applies to networks, not to {model}: drop it")
    from srx.modelref import resolve_model_ref

    ref = resolve_model_ref(model, scale=scale, param_key=param_key, baselines=BASELINES)
    if ref.kind == "baseline":
        s = scale or 4
        return ResolvedModel(model, s, PublishedBicubic() if model == "bicubic" else bicubic_upscaler(s))
    if ref.is_file:
        if param_key is not None:
            raise BadInput(f"--param-key applies to checkpoints, not to {Path(model).name}: drop it")
        return runner_model(model, scale, backend)
    from srx.models import load_model

    shipped = ref.kind == "shipped"
    net = load_model(model if shipped else Path(model), scale=scale, param_key=param_key)
    spec: ModelSpec = net.spec  # type: ignore[assignment]
    check_trained(spec, f"--model {model}" if shipped else Path(model).name)
    extra = {"param_key": param_key} if param_key and not shipped else {}
    if backend not in (None, "torch"):
        return _module_runner_model(model if shipped else str(Path(model)), net, backend, extra)
    return ResolvedModel(model if shipped else str(Path(model)), spec.scale, torch_upscaler(net), spec, extra)


def _module_runner_model(name: str, net: Any, backend: str, extra: dict[str, Any] | None = None) -> ResolvedModel:
    """A PyTorch network run by another backend (srx exports it for that backend)."""
    from srx.runtime import ModelSource

    return _runner_resolved(name, ModelSource.from_module(net, origin=name), backend, extra or {})


def runner_model(path: str | Path, scale: int | None = None, backend: str | None = None) -> ResolvedModel:
    """An exported model (srx ONNX, or an engine with its sidecar) run by an srx/runtime runner.

    backend=None: what `--backend auto` picks for inputs of many sizes
    (srx.runtime.registry.auto_backend): onnxruntime on the CPU for ONNX, the backend that
    built it (its sidecar) for an engine.
    Dataset images all differ in size, so the onnxruntime session keeps its dynamic
    shapes instead of building one per image.
    """
    from srx.runtime import ModelSource
    from srx.runtime.registry import auto_backend

    source = ModelSource.from_file(path, scale)
    try:
        check_trained(source.spec, Path(path).name)
    except BadInput:
        source.close()
        raise
    if backend is None:
        backend = auto_backend(source, "cpu" if source.kind == "onnx" else "cuda", varied_shapes=True)
    return _runner_resolved(str(path), source, backend, {})


def _runner_resolved(name: str, source: Any, backend: str, extra: dict[str, Any]) -> ResolvedModel:
    """Open `backend`'s runner on `source` (closed with the result)."""
    from srx.runtime import open_runner
    from srx.runtime.device import has_cuda
    from srx.runtime.registry import get_backend

    where = get_backend(backend).device
    device = where if where != "any" else ("cuda" if has_cuda() else "cpu")
    options: dict[str, Any] = {"specialize": False} if backend.startswith("onnxruntime") else {}
    try:
        runner = open_runner(backend, source, device, **options)
        runner.activate()
    except BaseException:
        source.close()
        raise

    def close() -> None:
        try:
            runner.deactivate()
        finally:
            source.close()

    extra = {**extra, "backend": backend, "precision": runner.precision, "runner": runner.describe()}
    return ResolvedModel(name, source.spec.scale, upscaler_from_runner(runner.run), source.spec, extra, close)


def check_trained(spec: ModelSpec, what: str) -> None:
    """Refuse the untrained embedded default: its PSNR would look like a real result."""
    if not spec.trained:
        raise BadInput(
            f"{what} is the untrained embedded default ({spec.label}): its scores mean nothing; "
            "evaluate a trained checkpoint"
        )


# -- datasets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetImage:
    """One image of a dataset: its HR file and, when the dataset has them, its LR file."""

    name: str
    hr: Path
    lr: Path | None


def hr_images(dataset: str | Path) -> list[Path]:
    """The HR images of a dataset folder (DIR/HR if it exists, else DIR), sorted by name."""
    root = Path(dataset)
    if not root.exists():
        raise BadInput(f"dataset folder {root} does not exist: check the path")
    if not root.is_dir():
        raise BadInput(f"dataset {root} is not a folder: give the folder that holds the HR images (or HR/)")
    if not os.access(root, os.R_OK | os.X_OK):
        raise BadInput(f"cannot read dataset folder {root} (permission denied): check its permissions")
    hr_dir = root / "HR" if (root / "HR").is_dir() else root
    files = image_files(hr_dir, recursive=False)
    if not files:
        other = [p for p in hr_dir.iterdir() if not p.name.startswith(".")]
        what = (
            "is empty" if not other else f"has no images ({', '.join(IMAGE_SUFFIXES)}) among its {len(other)} entries"
        )
        raise BadInput(f"dataset folder {hr_dir} {what}: give a folder of HR images")
    return files


def dataset_pairs(dataset: str | Path, scale: int) -> tuple[list[DatasetImage], str]:
    """HR images with their LR files (DIR/LR_bicubic/X{s}) if that folder exists; and where LR comes from."""
    root = Path(dataset)
    hr_files = hr_images(root)
    lr_dir = root / "LR_bicubic" / f"X{scale}"
    if not lr_dir.is_dir():
        if (root / "LR_bicubic").is_dir():
            found = sorted(p.name for p in (root / "LR_bicubic").iterdir() if p.is_dir())
            raise BadInput(
                f"{root / 'LR_bicubic'} has no X{scale} folder (it has: {', '.join(found) or 'none'}): "
                "choose a matching --scale"
            )
        return [
            DatasetImage(p.stem, p, None) for p in hr_files
        ], f"generated: MATLAB bicubic 1/{scale} of the HR (uint8)"
    lr_by_name = {p.stem: p for p in image_files(lr_dir, recursive=False)}
    pairs = []
    for p in hr_files:
        lr = lr_by_name.get(p.stem) or lr_by_name.get(f"{p.stem}x{scale}")
        if lr is None:
            raise BadInput(f"{lr_dir} has no LR image for {p.name} (looked for {p.stem}.* and {p.stem}x{scale}.*)")
        pairs.append(DatasetImage(p.stem, p, lr))
    return pairs, f"files: {lr_dir}"


def check_dataset(dataset: str | Path, scale: int, min_lr: int = 1) -> None:
    """What `evaluate_model` checks before it runs a model (folders, LR files, image headers and
    sizes), for callers that evaluate later, such as `srx train --val`."""
    pairs, _ = dataset_pairs(dataset, scale)
    _check_sizes(pairs, scale, min_lr)


def _check_sizes(pairs: Sequence[DatasetImage], scale: int, min_lr: int) -> None:
    """Read image headers only, so a bad image fails before any long work."""
    from PIL import Image, UnidentifiedImageError

    for pair in pairs:
        try:
            with pixel_limit(pair.hr), Image.open(pair.hr, formats=DECODERS) as im:
                w, h = im.size
        except (UnidentifiedImageError, OSError) as e:
            raise BadInput(
                f"cannot read image {pair.hr} ({e}): it may be truncated or not an image; replace or remove it"
            ) from e
        lw, lh = w // scale, h // scale
        # SSIM's 11x11 window must fit inside the HR after the border crop.
        need = max(min_lr * scale, 11 + 2 * scale)
        if lh * scale < need or lw * scale < need:
            raise BadInput(f"{pair.hr} is {w}x{h}: too small for x{scale} evaluation (needs at least {need}x{need})")


# -- evaluation ----------------------------------------------------------------------------


def evaluate_model(dataset: str | Path, resolved: ResolvedModel, *, progress: Progress | None = None) -> EvalResult:
    """Score `resolved` on every image of `dataset`; see the module docstring for the protocol."""
    scale = resolved.scale
    pairs, lr_source = dataset_pairs(dataset, scale)
    min_lr = resolved.spec.min_size if resolved.spec is not None else 1
    _check_sizes(pairs, scale, min_lr)
    published = isinstance(resolved.upscaler, PublishedBicubic)
    if published and any(p.lr is not None for p in pairs):
        # The published row needs the HR's Y in double precision; with given LR files the
        # like-for-like baseline is upscaling them.
        resolved = ResolvedModel("bicubic-rgb", scale, bicubic_upscaler(scale))
        published = False
    if published:
        protocol = "published bicubic: Y of HR / 255, MATLAB imresize 1/s then s in double, rounded to uint8"
        lr_source = "none: bicubic computed from the HR Y channel"
    else:
        protocol = "LR RGB uint8 -> model -> clamp [0, 1], round to uint8 -> MATLAB rgb2ycbcr Y"
    protocol += f"; PSNR/SSIM on Y, {scale}-pixel border cropped; SSIM 11x11 Gaussian sigma 1.5"

    scores = []
    bar = (progress or Progress.off()).bar(f"eval x{scale}", len(pairs), "img")
    for pair in pairs:
        hr = mod_crop(read_rgb8(pair.hr), scale)
        if published:
            y_sr = resolved.upscaler.y_from_hr(hr, scale)  # type: ignore[union-attr]
        else:
            lr = read_rgb8(pair.lr) if pair.lr is not None else imresize(hr, 1 / scale)
            expect = (hr.shape[0] // scale, hr.shape[1] // scale)
            if lr.shape[:2] != expect:
                raise BadInput(
                    f"{pair.lr} is {lr.shape[1]}x{lr.shape[0]}, expected {expect[1]}x{expect[0]} "
                    f"(HR {hr.shape[1]}x{hr.shape[0]} / {scale}): wrong --scale or LR folder?"
                )
            sr = to_uint8(resolved.upscaler(lr))  # type: ignore[operator]
            if sr.shape != hr.shape:
                raise BadInput(
                    f"{resolved.name} turned {lr.shape[1]}x{lr.shape[0]} into {sr.shape[1]}x{sr.shape[0]}, "
                    f"expected {hr.shape[1]}x{hr.shape[0]}: is it a x{scale} model?"
                )
            y_sr = rgb_to_y(sr)
        y_hr = shave(rgb_to_y(hr), scale).astype(np.float64)
        y_sr = shave(y_sr, scale).astype(np.float64)
        scores.append(ImageScore(pair.name, psnr(y_hr, y_sr), ssim(y_hr, y_sr)))
        bar.update(1)
    bar.close()
    return EvalResult(
        dataset=str(dataset),
        scale=scale,
        model=resolved.name,
        images=scores,
        protocol=protocol,
        lr_source=lr_source,
        model_spec=resolved.spec.to_dict() if resolved.spec is not None else None,
        extra=resolved.extra,
    )


def evaluate(
    dataset: str | Path,
    model: str = "bicubic",
    scale: int | None = None,
    *,
    param_key: str | None = None,
    backend: str | None = None,
    progress: Progress | None = None,
) -> EvalResult:
    """`srx eval`: resolve `model` (bicubic, bicubic-rgb, checkpoint) and score it on `dataset`
    (with `backend`: run by that srx backend instead of its default)."""
    hr_images(dataset)  # the cheaper mistake first: before a model is loaded
    if backend is not None:
        from srx.runtime.registry import get_backend

        get_backend(backend)  # an unknown name is refused before a model is loaded
    with resolve_model(model, scale, param_key=param_key, backend=backend) as resolved:
        return evaluate_model(dataset, resolved, progress=progress)


def format_result(result: EvalResult) -> str:
    """A table per image and the mean."""
    width = max([len("mean"), *(len(s.name) for s in result.images)])
    lines = [
        f"{result.model}  x{result.scale}  on {result.dataset}",
        f"  {'image':<{width}}  {'PSNR-Y':>8}  {'SSIM-Y':>7}",
    ]
    lines += [f"  {s.name:<{width}}  {s.psnr_y:8.4f}  {s.ssim_y:7.5f}" for s in result.images]
    lines.append(f"  {'mean':<{width}}  {result.psnr_y:8.4f}  {result.ssim_y:7.5f}")
    return "\n".join(lines)
