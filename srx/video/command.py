"""What `srx upscale VIDEO...` and `srx bench --video FILE` run: options -> model -> work -> text + JSON.

cli.py parses and checks the options it shares with the image path, then hands video
inputs here, so the commands stay thin and the video logic stays in srx.video. Messages
for the user go through `echo` (stderr); progress bars appear only on a terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from srx.errors import BadInput
from srx.progress import Progress
from srx.upscale import OutputOptions
from srx.video import is_video, video_files
from srx.video.avlib import require_av
from srx.video.reader import Clip
from srx.video.upscale import VideoOptions

Echo = Callable[[str], None]


def is_video_run(inputs: tuple[str, ...] | list[str]) -> bool:
    """Whether the inputs are videos (True), images (False); a mix is refused."""
    from srx.filekinds import image_files

    kinds = set()
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            videos, images = video_files(p), image_files(p, recursive=False)
            if videos and images:
                raise BadInput(f"{p}: folder holds both images and videos: upscale them in separate commands")
            kinds.add("video" if videos else "image")
        else:
            kinds.add("video" if is_video(p) else "image")
    if len(kinds) > 1:
        raise BadInput("images and videos in one command: upscale them in separate commands")
    return kinds == {"video"}


def frame_bars(progress: Progress) -> Callable[[str, int | None], Any]:
    """Frames done, frames per second and the time left per video (on a terminal only)."""

    def bar(desc: str, total: int | None) -> Any:
        return progress.bar(desc[:30], total, unit="frame")

    return bar


def upscale_command(
    inputs: list[str],
    out: str,
    source: Any,
    backend: str,
    device: str,
    opts: VideoOptions,
    *,
    output: OutputOptions,
    progress: Progress,
    echo: Echo,
) -> tuple[str, dict[str, Any]]:
    """Upscale the videos; returns the summary text and the JSON record."""
    from srx.runtime.registry import open_runner
    from srx.tiling import check_tile_options
    from srx.upscale import existing_outputs, output_folder
    from srx.video.upscale import plan_video_jobs, upscale_videos

    require_av()
    opts.check()
    if output.suffix or output.ext or output.outscale is not None:
        raise BadInput("--suffix, --ext and --outscale apply to images; a video keeps its name (or -o FILE names it)")
    plan = existing_outputs(plan_video_jobs(inputs, out), output)
    jobs, skipped = plan.jobs, [str(j.src) for j in plan.skipped]
    if not jobs:
        text = f"nothing to do: every output exists already ({len(skipped)}; --skip-existing)"
        return text, {"outputs": [], "failed": [], "skipped": skipped}
    check_tile_options(source.spec, opts.tile, opts.overlap)  # a bad --tile before any work

    def warn(message: str) -> None:
        echo(f"srx: warning: {message}")

    def on_error(path: Path, message: str) -> None:
        echo(f"srx: error: {message}")

    with output_folder(jobs), open_runner(backend, source, device) as runner:  # type: ignore[arg-type]
        result = upscale_videos(
            jobs, runner, source.spec, opts, progress=frame_bars(progress), warn=warn, on_error=on_error
        )
    result.update({"backend": backend, "device": device, "model": source.spec.label, "skipped": skipped})
    lines = [f"upscaled {len(result['outputs'])} video(s) with {source.spec.label} on {backend} ({device})"]
    for o in result["outputs"]:
        e = o["encoding"]
        lines.append(
            f"  {o['input']} -> {o['output']} ({o['size_in']} -> {o['size_out']}, {o['frames']} frames, "
            f"{e['encoder']} {e['quality']} {e['pix_fmt']}, {o['fps']:.2f} fps, {o['seconds']:.1f} s)"
        )
    if result["failed"]:
        n, total = len(result["failed"]), len(jobs)
        result["summary_error"] = (
            f"none of the {total} videos could be upscaled (reasons above): fix or remove them"
            if n == total
            else f"{n} of {total} video(s) could not be upscaled (listed above); the others were written"
        )
    return "\n".join(lines), result


def clip_options(start: float | None, duration: float | None) -> Clip:
    return Clip(start=start, duration=duration)


def bench_command(
    video: str,
    weights: str | None,
    model_file: str | None,
    scale: int | None,
    param_key: str | None,
    backends: str | None,
    device: str | None,
    runs: int | None,
    warmup: int | None,
    threads: int | None,
    batch: int,
    *,
    encoder: dict[str, Any] | None = None,
    progress: Progress,
    command: list[str],
) -> dict[str, Any]:
    """srx bench --video: the pipeline and the model alone, per backend (srx.video.bench)."""
    from srx.bench.engine import (
        CPU_DEFAULT_RUNS,
        CPU_DEFAULT_WARMUP,
        CUDA_DEFAULT_RUNS,
        CUDA_DEFAULT_WARMUP,
        BenchConfig,
    )
    from srx.runtime.device import NO_GPU, has_cuda
    from srx.runtime.registry import auto_backend, parse_backends
    from srx.runtime.source import ModelSource
    from srx.video.bench import bench_video
    from srx.video.probe import probe

    require_av("'srx bench --video'")
    BenchConfig(runs=runs, warmup=warmup, threads=threads, batch=batch)  # refuses bad counts, as srx bench does
    names = parse_backends(backends) if backends is not None else None
    probe(video)  # a bad video is refused before the model loads
    dev = device or ("cuda" if has_cuda() else "cpu")
    if dev == "cuda" and not has_cuda():
        raise BadInput(f"--device cuda: {NO_GPU}; use --device cpu")
    cuda = dev == "cuda"
    runs = runs if runs is not None else (CUDA_DEFAULT_RUNS if cuda else CPU_DEFAULT_RUNS)
    warmup = warmup if warmup is not None else (CUDA_DEFAULT_WARMUP if cuda else CPU_DEFAULT_WARMUP)
    with ModelSource.from_options(weights, model_file, scale, param_key) as source:
        names = names or [auto_backend(source, dev)]
        return bench_video(
            video,
            source,
            names,
            dev,
            runs=runs,
            warmup=warmup,
            batch=batch,
            threads=threads,
            encoder=encoder,
            progress=lambda desc, total: progress.bar(f"{desc:<17}", total, unit="run"),
            frame_bar=frame_bars(progress),
            command=command,
        )
