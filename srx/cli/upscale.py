"""`srx upscale`: images (srx.upscale) or videos (srx.video.command)."""

from __future__ import annotations

from typing import Any

import click

from srx.cli.group import cli
from srx.cli.options import (
    MODEL_HELP,
    backend_option,
    check_json_path,
    default_device,
    device_option,
    json_option,
    model_options,
    model_ref,
    parse_scale,
    quiet_option,
)
from srx.cli.output import echo_err, emit_json, human, show, warn
from srx.errors import BadInput
from srx.progress import Progress

TILE_HELP = (
    "Tile side in input pixels: bounds memory, costs time (each tile also computes the model's reach, 136 pixels "
    "for the x4 paper SAFMN, on every inner side). Default (or 0): whole images up to 1 MP, 512 above; -1: never tile."
)
OUTSCALE_HELP = (
    "Final size as a multiple of the input's (default: the model's scale); the model's output is resampled "
    "with Lanczos."
)
MODEL_KEYS = ("weights", "model_file", "scale", "param_key")


@cli.command(short_help="Upscale image files or folders.")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "out", required=True, help="Output file (one input) or folder (created if missing).")
@model_options(
    "CKPT|NAME",
    "Checkpoint, or a shipped network: default, seeded, team15 (default: the best shipped one; x4: team15).",
    "CKPT|ONNX|ENGINE",
    MODEL_HELP,
)
@click.option("--tile", type=int, default=None, metavar="N", help=TILE_HELP)
@click.option("--tile-overlap", type=int, default=None, help="Context around each tile (default: the model's reach).")
@backend_option
@device_option
@click.option("--outscale", type=float, default=None, metavar="F", help=OUTSCALE_HELP)
@click.option("--suffix", default="", help="Added to each output name in a folder: photo.png -> photo<SUFFIX>.png.")
@click.option("--ext", type=click.Choice(["png", "jpg", "webp"]), default=None, help="Output format in a folder.")
@click.option("--quality", type=int, default=95, show_default=True, help="JPEG and WebP quality, 1-100.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (default: refuse them before any work).")
@click.option("--skip-existing", is_flag=True, help="Leave existing outputs alone and skip their inputs.")
@click.option(
    "--codec", default=None, help="Videos: codec or encoder (default: the input's, else H.264; docs/video.md)."
)
@click.option("--crf", type=int, default=None, help="Videos: constant quality, lower is better (default: x264 18).")
@click.option("--batch", type=int, default=1, show_default=True, help="Videos: frames per model call.")
@click.option("--start", type=float, default=None, metavar="SECONDS", help="Videos: start of the clip to upscale.")
@click.option("--duration", type=float, default=None, metavar="SECONDS", help="Videos: length of the clip.")
@click.option("--preset", default=None, help="Videos: encoder speed preset (x264 / x265: ultrafast .. veryslow).")
@quiet_option
@json_option
def upscale(
    inputs: tuple[str, ...],
    out: str,
    tile: int | None,
    tile_overlap: int | None,
    backend: str,
    device: str | None,
    quiet: bool,
    json_path: str | None,
    **options: Any,
) -> None:
    """Upscale PNG / JPEG / WebP files or folders (alpha, 16-bit and EXIF orientation kept), or videos."""
    from srx.runtime.registry import get_backend
    from srx.tiling import check_tile_options
    from srx.upscale import OutputOptions
    from srx.video.command import VideoOptions, clip_options, is_video_run

    model = {k: options.pop(k) for k in MODEL_KEYS}
    video_keys = ("codec", "crf", "batch", "start", "duration", "preset")
    codec, crf, batch, start, duration, preset = (options.pop(k) for k in video_keys)
    if options["overwrite"] and options["skip_existing"]:
        raise BadInput("give --overwrite or --skip-existing, not both")
    output = OutputOptions(**options)
    parse_scale(model["scale"])
    if backend != "auto":
        get_backend(backend)
    check_json_path(json_path)
    check_tile_options(None, tile, tile_overlap)
    video = VideoOptions(codec, crf, batch, clip_options(start, duration), tile, tile_overlap, preset)
    progress = Progress.for_terminal(quiet=quiet, json_path=json_path)
    run = (model, backend, default_device(device), progress, json_path)
    if is_video_run(inputs):
        _upscale_videos(list(inputs), out, video, output, *run)
    elif video != VideoOptions(tile=tile, overlap=tile_overlap):
        raise BadInput(
            "--codec, --crf, --preset, --batch, --start and --duration apply to videos; these inputs are images"
        )
    else:
        _upscale_images(list(inputs), out, video, output, *run)


def _open_source(ref: Any) -> Any:
    """Without --weights or --model: the shipped network with the best score, named in the output."""
    from srx.runtime.source import ModelSource

    return ModelSource.from_ref(ref, default="best")


def _upscale_images(
    inputs: list[str], out: str, video: Any, output: Any, model: dict[str, Any], backend: str, dev: str,
    progress: Progress, json_path: str | None,
) -> None:  # fmt: skip
    from srx.runtime.registry import auto_backend
    from srx.tiling import check_tile_options
    from srx.upscale import UpscaleResult, model_warnings, plan_jobs, upscale_images

    plan = plan_jobs(inputs, out, output)
    if not plan.jobs:
        show(UpscaleResult([], [], [str(j.src) for j in plan.skipped]), json_path)
        return
    ref = model_ref(*(model[k] for k in MODEL_KEYS))
    with _open_source(ref) as source:
        check_tile_options(source.spec, video.tile, video.overlap)
        name = auto_backend(source, dev) if backend == "auto" else backend
        for message in model_warnings(source, video.tile, video.overlap, default=not ref.named, backend=name):
            warn(message)
        result = upscale_images(
            plan, source, name, dev, tile=video.tile, tile_overlap=video.overlap, output=output, progress=progress,
            on_error=lambda path, message: echo_err(f"srx: error: {message}"),
        )  # fmt: skip
    show(result, json_path)
    result.check()


def _upscale_videos(
    inputs: list[str], out: str, video: Any, output: Any, model: dict[str, Any], backend: str, dev: str,
    progress: Progress, json_path: str | None,
) -> None:  # fmt: skip
    """srx upscale on video files (srx.video.command, issue 15)."""
    from srx.runtime.registry import auto_backend
    from srx.upscale import model_warnings
    from srx.video.avlib import require_av
    from srx.video.command import upscale_command

    require_av()  # before the model loads: a missing PyAV is the first thing to say
    ref = model_ref(*(model[k] for k in MODEL_KEYS))
    with _open_source(ref) as source:
        name = auto_backend(source, dev) if backend == "auto" else backend
        for message in model_warnings(source, video.tile, video.overlap, default=not ref.named, backend=name):
            warn(message)
        text, result = upscale_command(
            inputs, out, source, name, dev, video, output=output, progress=progress, echo=echo_err
        )
    human(text, json_path)
    emit_json(result, json_path)
    if result.get("summary_error"):
        raise BadInput(result["summary_error"])
