"""srx upscale: images in, upscaled images out (docs/cli.md#srx-upscale), with any backend and bounded memory.

Output naming: with one input file and an -o that ends in .png/.jpg/.jpeg/.webp (and is
not an existing folder), -o is the output file (its suffix picks the format); a suffix of
a format srx does not write (.gif, .tif, ...) is refused. Otherwise -o is a folder (created
by `output_folder` if missing, and removed again if the run writes nothing into it) and
every input keeps its file name and format inside it (or takes `--suffix` / `--ext`);
folders given as inputs contribute the images directly inside them (not recursive). An
output that exists is refused before any work unless --overwrite or --skip-existing.

Pixels: 8-bit stays 8-bit, 16-bit PNG stays 16-bit. Grayscale images go through the RGB
model as three equal channels and come back as gray: the BT.601 luma of the output
(0.299 R + 0.587 G + 0.114 B, as Pillow's convert('L')). Alpha is upscaled on its own
with bicubic interpolation (the model is trained on colour, not on masks) and clipped to
[0, 1]. Images smaller than the model's minimum are padded by edge replication and the
padding is cropped off the output.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from srx.errors import BadInput, CheckFailed, SrxError
from srx.filekinds import IMAGE_SUFFIXES, image_files
from srx.images import FORMATS, LoadedImage, quantize, read_image, write_image
from srx.progress import Progress
from srx.resources import check_memory
from srx.spec import ModelSpec
from srx.tiling import AUTO_TILE, TilePlan, plan_tiling, tiled_apply

# Image formats Pillow knows but srx does not write: as -o they are a mistake, not a folder name.
UNWRITABLE_SUFFIXES = (".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif", ".jp2", ".jxl", ".ico", ".ppm")

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path


@dataclass(frozen=True)
class OutputOptions:
    """What `srx upscale` writes, from its flags.

    suffix: added to each file name's stem in an output folder (`photo.png` -> `photo_x4.png`).
    ext: the output format in a folder ('png', 'jpg', 'webp'; None keeps each input's).
    overwrite: replace existing outputs; skip_existing: leave them and skip those inputs;
    neither: an existing output is refused before any work.
    outscale: the final size as a multiple of the input's (None: the model's scale); the
    model's output is resampled to it with Lanczos. quality: JPEG and WebP quality, 1-100."""

    suffix: str = ""
    ext: str | None = None
    overwrite: bool = False
    skip_existing: bool = False
    outscale: float | None = None
    quality: int = 95

    def __post_init__(self) -> None:
        if self.ext is not None and f".{self.ext}" not in FORMATS:
            raise BadInput(f"--ext {self.ext}: srx writes png, jpg or webp")
        if self.outscale is not None and not 0 < self.outscale <= 16:
            raise BadInput(f"--outscale {self.outscale:g}: give a factor above 0 and at most 16 (e.g. 2 or 3.5)")
        if not 1 <= self.quality <= 100:
            raise BadInput(f"--quality {self.quality}: give 1 to 100 (JPEG and WebP; default 95)")
        if "/" in self.suffix or "\\" in self.suffix:
            raise BadInput(f"--suffix {self.suffix!r}: a suffix cannot hold a path separator")


@dataclass
class JobPlan:
    jobs: list[Job]
    skipped: list[Job]  # outputs that exist, left alone (--skip-existing)


def plan_jobs(inputs: list[str], out: str, output: OutputOptions = OutputOptions()) -> JobPlan:
    """Map inputs (files, folders) to output paths; BadInput before any work if impossible."""
    files = _input_files(inputs)
    o = Path(out)
    single_file = len(inputs) == 1 and not Path(inputs[0]).is_dir()
    suffix = o.suffix.lower()
    if single_file and suffix in UNWRITABLE_SUFFIXES and not o.is_dir():
        raise BadInput(f"-o {o}: srx cannot write {suffix[1:].upper()} images; name the output .png, .jpg or .webp")
    if single_file and suffix in IMAGE_SUFFIXES and not o.is_dir():
        if output.ext is not None and FORMATS[f".{output.ext}"] != FORMATS[suffix]:
            raise BadInput(f"-o {o} names a {suffix[1:].upper()} file but --ext is {output.ext}: give one of them")
        jobs = [Job(files[0], o)]
    else:
        if o.exists() and not o.is_dir():
            if single_file:
                raise BadInput(
                    f"-o {o} exists and is not a folder or an image file name: "
                    "name the output .png, .jpg or .webp, or give a folder"
                )
            raise BadInput(f"-o {o} is a file, but {len(files)} images need a folder: give a folder name")
        if suffix in IMAGE_SUFFIXES and not o.exists():
            raise BadInput(f"-o {o} looks like a file name, but there are {len(files)} inputs: give a folder")
        jobs = [Job(f, o / _output_name(f, output)) for f in files]
    check_distinct(jobs)
    folder = jobs[0].dst.parent
    if not folder.is_dir():
        _check_creatable(folder)  # -o names a folder (or the folder of a file) to create
    else:
        from srx.fileio import check_writable

        check_writable(jobs[0].dst)
    return existing_outputs(jobs, output)


def _input_files(inputs: list[str]) -> list[Path]:
    if not inputs:
        raise BadInput("no input given: name image files or folders")
    files: list[Path] = []
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            found = image_files(p, recursive=False)
            if not found:
                raise BadInput(
                    f"{p}: folder holds no PNG, JPEG, WebP, BMP or TIFF images (not searched recursively): give image files"
                )
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise BadInput(f"{p} does not exist: check the path")
    return files


def _output_name(src: Path, output: OutputOptions) -> str:
    # srx reads BMP and TIFF but does not write them: those inputs become lossless PNG.
    ext = f".{output.ext}" if output.ext else (src.suffix if src.suffix.lower() in FORMATS else ".png")
    return f"{src.stem}{output.suffix}{ext}"


def check_distinct(jobs: list[Job], remedy: str = "choose another -o (or a --suffix)") -> None:
    """No two inputs write one output, and no output replaces its own input."""
    seen: dict[Path, Path] = {}
    for j in jobs:
        key = j.dst.resolve()
        if key in seen:
            raise BadInput(
                f"{seen[key]} and {j.src} would both be written to {j.dst}: run them with different -o folders"
            )
        if key == j.src.resolve():
            raise BadInput(f"{j.src}: output would overwrite the input; {remedy}")
        seen[key] = j.src


def existing_outputs(jobs: list[Job], output: OutputOptions) -> JobPlan:
    """Existing outputs are never replaced silently: refused, skipped or (--overwrite) replaced."""
    existing = [j for j in jobs if j.dst.exists()]
    if not existing or output.overwrite:
        return JobPlan(jobs, [])
    if output.skip_existing:
        return JobPlan([j for j in jobs if j not in existing], existing)
    shown = ", ".join(str(j.dst) for j in existing[:3]) + (
        f" and {len(existing) - 3} more" if len(existing) > 3 else ""
    )
    raise BadInput(
        f"{shown} exist{'s' if len(existing) == 1 else ''} already: add --overwrite to replace, or --skip-existing"
    )


def _check_creatable(folder: Path) -> None:
    """The output folder does not exist yet: its nearest existing ancestor must be a writable folder."""
    base = folder
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise BadInput(f"cannot create output folder {folder}: {base} is a file, not a folder; choose another -o")
    if not os.access(base, os.W_OK | os.X_OK):
        raise BadInput(f"cannot create output folder {folder}: no permission to write in {base}; choose another -o")


@contextlib.contextmanager
def output_folder(jobs: list[Job]) -> Iterator[Path]:
    """Create the jobs' output folder (with missing parents) for the duration of the work; the
    folders created here are removed again if they are still empty at the end (every image
    failed, or the work was interrupted), so a failed run leaves nothing behind."""
    folder = jobs[0].dst.parent
    created = []
    p = folder
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadInput(f"cannot create output folder {folder}: {e.strerror or e}; choose another -o") from e
        yield folder
    finally:
        for d in created:  # deepest first; rmdir only removes empty folders
            with contextlib.suppress(OSError):
                d.rmdir()


def upscale_image(
    img: LoadedImage,
    forward: Callable[[np.ndarray], np.ndarray],
    spec: ModelSpec,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    progress: Progress | None = None,
    what: str = "tiles",
) -> tuple[np.ndarray, TilePlan, int]:
    """Upscale one decoded image; returns quantized pixels ((sH, sW[, C]) uint8 or uint16),
    the tiling plan used and the number of tiles. A tiled image shows a bar of its tiles."""
    s = spec.scale
    h, w = img.height, img.width
    lr = np.ascontiguousarray(img.rgb.transpose(2, 0, 1), dtype=np.float32)
    ph, pw = _padded(h, spec), _padded(w, spec)
    if (ph, pw) != (h, w):
        lr = np.pad(lr, ((0, 0), (0, ph - h), (0, pw - w)), mode="edge")
    plan = plan_tiling(spec, ph, pw, tile, overlap)
    channels = (1 if img.gray else 3) + (img.alpha is not None)
    dtype = np.uint8 if img.bit_depth == 8 else np.uint16
    _check_memory(spec, plan, ph, pw, h * w * s * s * channels * np.dtype(dtype).itemsize)
    out = np.empty((h * s, w * s, channels), dtype=dtype)
    color = 1 if img.gray else 3

    def emit(y0: int, rows: np.ndarray) -> None:
        y1 = min(h * s, y0 + rows.shape[0])
        if y0 >= y1:
            return
        block = rows[: y1 - y0, : w * s]
        if not np.isfinite(block).all():
            bad = int(block.size - np.count_nonzero(np.isfinite(block)))
            raise CheckFailed(
                f"the model produced {bad} NaN or infinite value(s) in output rows {y0}-{y1}: nothing was written; "
                "check the model (srx bench shows its accuracy against PyTorch)"
            )
        if img.gray:
            block = (block @ LUMA)[..., None]
        out[y0:y1, :, :color] = quantize(block, img.bit_depth)

    n = plan.tiles(ph, pw)
    bar = (progress or Progress.off()).bar(what, n, "tile") if n > 1 else None
    try:
        n_tiles = tiled_apply(lr, forward, s, plan, emit, bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    if img.alpha is not None:
        out[..., color] = quantize(_bicubic(img.alpha, w * s, h * s), img.bit_depth)
    pixels = out[..., 0] if channels == 1 else out
    return pixels, plan, n_tiles


def resample(pixels: np.ndarray, width: int, height: int, bit_depth: int) -> np.ndarray:
    """Quantized pixels ((H, W) or (H, W, C)) to width x height with Lanczos (Pillow, in float32
    per channel, so 16-bit keeps its precision): the --outscale step after the model."""
    from PIL import Image

    peak = 255.0 if bit_depth == 8 else 65535.0
    planes = pixels[..., None] if pixels.ndim == 2 else pixels
    resized = [
        np.asarray(
            Image.fromarray(planes[..., c].astype(np.float32) / np.float32(peak), mode="F").resize(
                (width, height), Image.Resampling.LANCZOS
            )
        )
        for c in range(planes.shape[2])
    ]
    q = quantize(np.stack(resized, axis=2), bit_depth)
    return q[..., 0] if pixels.ndim == 2 else q


def _check_memory(spec: ModelSpec, plan: TilePlan, h: int, w: int, out_bytes: int) -> None:
    """Refuse, before any work, an image whose tiles or output cannot fit in memory."""
    s = spec.scale
    if plan.tile is None:
        th, tw, band = h, w, 0
    else:
        side = plan.tile + 2 * plan.overlap + plan.blend
        th, tw = min(h, side), min(w, side)
        band = 4 * 3 * (plan.tile + plan.blend) * s * w * s  # one row of tiles, float32
    need = spec.forward_bytes(th, tw) + out_bytes + band + 4 * 3 * h * w
    what = f"upscaling {w}x{h}" + (" in one piece" if plan.tile is None else f" in tiles of {plan.tile}")
    check_memory(need, what, f"use --tile {AUTO_TILE} or smaller")


def _padded(n: int, spec: ModelSpec) -> int:
    n = max(n, spec.min_size)
    m = spec.size_multiple
    return -(-n // m) * m if m > 1 else n


def _bicubic(a: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(a.astype(np.float32), mode="F").resize((width, height), Image.Resampling.BICUBIC))


def upscale_files(
    jobs: list[Job],
    forward: Callable[[np.ndarray], np.ndarray],
    spec: ModelSpec,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    on_error: Callable[[Path, str], None] | None = None,
    progress: Progress | None = None,
    output: OutputOptions = OutputOptions(),
) -> dict[str, Any]:
    """Upscale every job; a bad file is reported through `on_error` and skipped. Progress:
    a bar of the images when there are several, and of the tiles of a tiled image."""
    progress = progress or Progress.off()
    done: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    images = (progress if len(jobs) > 1 else Progress.off()).bar("images", len(jobs), "img")
    try:
        for job in jobs:
            try:
                done.append(_upscale_file(job, forward, spec, tile, overlap, progress, output))
            except SrxError as e:
                if len(jobs) == 1:
                    raise
                failed.append({"input": str(job.src), "error": str(e)})
                if on_error:
                    on_error(job.src, str(e))
            images.update(1)
    finally:
        images.close()
    return {"outputs": done, "failed": failed}


def _upscale_file(
    job: Job,
    forward: Callable[[np.ndarray], np.ndarray],
    spec: ModelSpec,
    tile: int | None,
    overlap: int | None,
    progress: Progress,
    output: OutputOptions,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    img = read_image(job.src)
    fmt = FORMATS.get(job.dst.suffix.lower(), img.format)
    pixels, plan, n_tiles = upscale_image(
        img, forward, spec, tile=tile, overlap=overlap, progress=progress, what=job.src.name[-30:]
    )
    size = (img.width * spec.scale, img.height * spec.scale)
    if output.outscale is not None:
        want = (max(1, round(img.width * output.outscale)), max(1, round(img.height * output.outscale)))
        if want != size:
            channels = 1 if pixels.ndim == 2 else pixels.shape[2]
            need = (want[0] * want[1] + size[0] * size[1]) * 4 * (channels + 1)  # float planes, the old and new
            check_memory(need, f"resampling to {want[0]}x{want[1]}", "use a smaller --outscale")
            pixels, size = resample(pixels, want[0], want[1], img.bit_depth), want
    write_image(
        job.dst, pixels, bit_depth=img.bit_depth, format=fmt, icc_profile=img.icc_profile, quality=output.quality
    )
    return {
        "input": str(job.src),
        "output": str(job.dst),
        "size_in": f"{img.width}x{img.height}",
        "size_out": f"{size[0]}x{size[1]}",
        "bit_depth": img.bit_depth,
        "gray": img.gray,
        "alpha": img.alpha is not None,
        "tiles": n_tiles,
        "tiling": plan.to_dict(),
        "seconds": round(time.perf_counter() - t0, 3),
    }


@dataclass
class UpscaleResult:
    """What `srx upscale` of images did: a record per image written, per input that failed, and the
    inputs skipped (--skip-existing); `backend` is None when nothing was left to do (no model ran)."""

    outputs: list[dict[str, Any]]
    failed: list[dict[str, str]]
    skipped: list[str]
    backend: str | None = None
    device: str | None = None
    model: str | None = None  # the model's label
    untrained: bool = False

    def to_json(self) -> dict[str, Any]:
        if self.backend is None:
            return {"outputs": self.outputs, "failed": self.failed, "skipped": self.skipped}
        return {
            "outputs": self.outputs,
            "failed": self.failed,
            "backend": self.backend,
            "device": self.device,
            "model": self.model,
            "skipped": self.skipped,
            "untrained": self.untrained,
        }

    def format(self) -> str:
        """The lines `srx upscale` prints: what ran, and per image its size, tiling and time."""
        if self.backend is None:
            return f"nothing to do: every output exists already ({len(self.skipped)}; --skip-existing)"
        n = len(self.outputs)
        lines = [f"upscaled {n} image{'s' if n != 1 else ''} with {self.model} on {self.backend} ({self.device})"]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} input(s) whose output exists (--skip-existing)")
        for o in self.outputs:
            t = o["tiling"]
            how = (
                "whole"
                if t["tile"] is None
                else f"{o['tiles']} tiles of {t['tile']} (+{t['tile_overlap']}), "
                + ("exact" if t["exact"] else f"blended: {t['note']}")
            )
            lines.append(f"  {o['input']} -> {o['output']} ({o['size_out']}, {how}, {o['seconds']:.1f} s)")
        if self.untrained:
            lines.append(
                "  NOTE: untrained model: these outputs are noise, not results; pass --weights CKPT for real images"
            )
        return "\n".join(lines)

    def check(self) -> None:
        """After the lines are shown: some (or all) inputs could not be upscaled, exit 2."""
        if self.failed:
            n, total = len(self.failed), len(self.failed) + len(self.outputs)
            if n == total:
                raise BadInput(f"none of the {total} inputs could be upscaled (reasons above): fix or remove them")
            raise BadInput(f"{n} of {total} input(s) could not be upscaled (listed above); the others were written")


def model_warnings(
    source: Any, tile: int | None, tile_overlap: int | None, *, default: bool, backend: str = ""
) -> list[str]:
    """What a user must know before the work starts: an untrained model, tiles that are mostly
    context, an INT8 file that `backend` (resolved, not 'auto') can only emulate on this CPU.
    `default`: no model was named (the shipped or embedded default runs)."""
    from srx.runtime.openvino_runner import emulated_int8_warning
    from srx.tiling import context_warning

    spec = source.spec
    found = []
    if not spec.trained and default:
        found.append(
            f"no trained model given: the embedded default ({spec.title} x{spec.scale}) is UNTRAINED and its output "
            "is noise, for latency tests only; pass --weights CKPT (or --model) to upscale for real"
        )
    elif not spec.trained:
        found.append(
            f"{source.origin} is an UNTRAINED model (exported from srx's embedded default?) and its output is noise; "
            "upscale with a trained checkpoint or its export"
        )
    if context_warning(spec, tile, tile_overlap):
        found.append(context_warning(spec, tile, tile_overlap))
    emulated = emulated_int8_warning(source, backend)  # reads the ONNX file: once
    if emulated:
        found.append(emulated)
    return found


def upscale_images(
    plan: JobPlan,
    source: Any,
    backend: str,
    device: str,
    *,
    tile: int | None,
    tile_overlap: int | None,
    output: OutputOptions,
    progress: Progress,
    on_error: Callable[[Path, str], None] | None = None,
) -> UpscaleResult:
    """`srx upscale` of images: run `plan`'s jobs with `backend` ('auto': chosen here) on `source`."""
    from srx.runtime.registry import auto_backend, open_runner

    name = auto_backend(source, device) if backend == "auto" else backend
    with output_folder(plan.jobs), open_runner(name, source, device) as runner:
        result = upscale_files(
            plan.jobs, runner.run, source.spec, tile=tile or None, overlap=tile_overlap, on_error=on_error,
            progress=progress, output=output,
        )  # fmt: skip
    skipped = [str(j.src) for j in plan.skipped]
    return UpscaleResult(result["outputs"], result["failed"], skipped, name, device, source.spec.label,
                         not source.spec.trained)  # fmt: skip
