"""srx upscale for videos: inputs -> output paths, and one video end to end with a Runner.

Naming follows the image path (srx.upscale): one input file and an -o ending in .mp4, .mkv,
.webm or .mov writes that file; otherwise -o is a folder (created if missing, removed again
if nothing was written into it) and every video keeps its name there, as .mkv when srx
does not write its container (.avi, .ts, ...). Every output is written to a temporary file
in its folder and renamed when complete: an error or Ctrl-C leaves nothing.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srx.errors import BadInput
from srx.fileio import atomic_path, check_writable
from srx.filekinds import file_kind
from srx.resources import check_memory
from srx.spec import ModelSpec
from srx.video import OUTPUT_FORMATS, VIDEO_SUFFIXES, video_files
from srx.video.encoding import choose_encoding
from srx.video.frames import HostFrames
from srx.video.pipeline import Pipeline, PipelineResult
from srx.video.probe import VideoInfo, probe
from srx.video.reader import Clip, VideoReader

Progress = Callable[[str, int | None], Any]  # (description, total frames or None) -> bar with update / close


@dataclass(frozen=True)
class VideoJob:
    src: Path
    dst: Path


@dataclass
class VideoOptions:
    codec: str | None = None
    crf: int | None = None
    batch: int = 1
    clip: Clip = field(default_factory=Clip)
    tile: int | None = None
    overlap: int | None = None
    preset: str | None = None

    def check(self) -> None:
        if self.batch < 1:
            raise BadInput(f"--batch {self.batch}: need at least 1 frame per model call")
        c = self.clip
        if c.start is not None and (c.start < 0 or not math.isfinite(c.start)):
            raise BadInput(f"--start {c.start}: give a time in seconds from the beginning, 0 or more")
        if c.duration is not None and (c.duration <= 0 or not math.isfinite(c.duration)):
            raise BadInput(f"--duration {c.duration}: give a length in seconds, more than 0")


def plan_video_jobs(inputs: list[str], out: str) -> list[VideoJob]:
    """Map video inputs (files, folders) to output paths; BadInput before any work if impossible."""
    files: list[Path] = []
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            found = video_files(p)
            if not found:
                raise BadInput(f"{p}: folder holds no videos (not searched recursively): give video files")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise BadInput(f"{p} does not exist: check the path")
    o = Path(out)
    suffix = o.suffix.lower()
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir()
    if single and not o.is_dir() and suffix in OUTPUT_FORMATS:
        jobs = [VideoJob(files[0], o)]
    elif single and not o.is_dir() and suffix and (suffix in VIDEO_SUFFIXES or _names_an_image(o)):
        raise BadInput(f"-o {o}: srx writes .mp4, .mkv, .webm or .mov videos; name the output one of those")
    else:
        if o.exists() and not o.is_dir():
            raise BadInput(f"-o {o} is a file, but {len(files)} videos need a folder: give a folder name")
        if suffix in OUTPUT_FORMATS and not o.exists():
            raise BadInput(f"-o {o} looks like a file name, but there are {len(files)} inputs: give a folder")
        jobs = [VideoJob(f, o / (f.name if f.suffix.lower() in OUTPUT_FORMATS else f.stem + ".mkv")) for f in files]
    from srx.upscale import check_distinct

    check_distinct(jobs, remedy="choose another -o")  # type: ignore[arg-type]
    _check_destination(jobs[0].dst.parent, o, jobs[0].dst)
    return jobs


def _names_an_image(path: Path) -> bool:
    """An image srx reads, or one Pillow knows that srx does not write (.gif, .avif, ...): a mistaken -o."""
    from srx.upscale import UNWRITABLE_SUFFIXES

    return file_kind(path) == "image" or path.suffix.lower() in UNWRITABLE_SUFFIXES


def _check_destination(folder: Path, out: Path, first: Path) -> None:
    if folder.is_dir():
        check_writable(first)
        return
    base = folder
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise BadInput(f"cannot create output folder {folder}: {base} is a file, not a folder; choose another -o")
    if not os.access(base, os.W_OK | os.X_OK):
        raise BadInput(f"cannot create output folder {folder}: no permission to write in {base}; choose another -o")
    if folder != out:
        raise BadInput(f"cannot write {out}: its folder {folder} does not exist; create it or choose another -o")


def expected_frames(info: VideoInfo, clip: Clip) -> int | None:
    """Frames the run should produce, for the progress bar (None when the file does not say)."""
    rate = float(info.rate) if info.rate else None
    if clip.duration is not None and rate:
        return max(1, math.ceil(clip.duration * rate))
    start = clip.start or 0.0
    if info.frames and not start:
        return info.frames
    if info.duration is not None and rate:
        return max(1, round((info.duration - start) * rate))
    return None


def make_frames(runner: Any, spec: ModelSpec, info: VideoInfo, opts: VideoOptions) -> Any:
    """The CUDA path (srx.video.cuda) for whole frames on a PyTorch runner on a GPU, else host arrays."""
    host = HostFrames(runner.run, spec, info.height, info.width, info.bit_depth, tile=opts.tile, overlap=opts.overlap)
    if runner.device == "cuda" and hasattr(runner, "stage_tensor") and not host.tiled:
        from srx.video.cuda import CudaFrames

        return CudaFrames(runner, spec, info.height, info.width, info.bit_depth, batch=opts.batch)
    return host


def check_video_memory(spec: ModelSpec, info: VideoInfo, frames: Any, batch: int) -> None:
    """Refuse, before any work, a video whose frames in flight cannot fit in memory."""
    h, w, s = info.height, info.width, spec.scale
    tiled = getattr(frames, "tiled", False)
    lr = 4 * 3 * h * w
    sr = 3 * h * w * s * s * (1 if tiled else 4)  # tiled frames leave the model quantized
    in_flight = (3 * batch + 2) * lr + (3 * batch + 1) * sr
    model = 0 if tiled else spec.forward_bytes(h, w, batch)  # tiles: upscale_image checks its own
    check_memory(in_flight + model, f"upscaling {info.size} video frames x{s}", "use --batch 1 or --tile 512")


def upscale_video(
    job: VideoJob,
    runner: Any,
    spec: ModelSpec,
    opts: VideoOptions,
    *,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
    mark_frame: int | None = None,
) -> dict[str, Any]:
    """Upscale one video into job.dst (atomically); returns its record for the JSON."""
    t0 = time.perf_counter()
    info = probe(job.src)
    enc = choose_encoding(info, job.dst.suffix, spec.scale, codec=opts.codec, crf=opts.crf, preset=opts.preset)
    for note in enc.notes:
        if warn:
            warn(f"{job.src}: {note}")
    frames = make_frames(runner, spec, info, opts)
    check_video_memory(spec, info, frames, opts.batch)
    total = expected_frames(info, opts.clip)
    bar = progress(job.src.name, total) if progress else None
    try:
        with atomic_path(job.dst) as tmp, VideoReader(info, enc.copy_streams, opts.clip) as reader:
            from srx.video.writer import VideoWriter

            writer = VideoWriter(tmp, enc, info, shown=str(job.dst))
            writer.open(reader)
            try:
                result = Pipeline(
                    reader.items(),
                    frames,
                    writer,
                    width=enc.width,
                    height=enc.height,
                    batch=opts.batch,
                    progress=bar.update if bar is not None else None,
                    mark_frame=mark_frame,
                ).run()
            except BaseException:
                writer.abort()
                raise
    finally:
        if bar is not None:
            bar.close()
    notes = reader.stats.notes()
    for note in notes:
        if warn:
            warn(f"{job.src}: {note}")
    return _record(job, info, enc, spec, opts, frames, result, reader.stats.to_dict(), [*enc.notes, *notes], t0)


def _record(
    job: VideoJob,
    info: VideoInfo,
    enc: Any,
    spec: ModelSpec,
    opts: VideoOptions,
    frames: Any,
    result: PipelineResult,
    read: dict[str, Any],
    notes: list[str],
    t0: float,
) -> dict[str, Any]:
    plan = getattr(frames, "plan", None)
    return {
        "input": str(job.src),
        "output": str(job.dst),
        "size_in": info.size,
        "size_out": f"{enc.width}x{enc.height}",
        "frames": result.frames,
        "fps": round(result.frames / result.wall_s, 3) if result.wall_s > 0 else None,
        "seconds": round(time.perf_counter() - t0, 3),
        "batch": opts.batch,
        "path": "cuda (pinned buffers, copy stream)" if type(frames).__name__ == "CudaFrames" else "host",
        "tiling": plan.to_dict() if plan is not None else None,
        "clip": {"start": opts.clip.start, "duration": opts.clip.duration},
        "source": info.to_dict(),
        "encoding": enc.to_dict(),
        "read": read,
        "pipeline": {
            "wall_s": round(result.wall_s, 4),
            "mark_s": None if result.mark_s is None else round(result.mark_s, 4),
            "mark_index": result.mark_index,
            "submitted_s": round(result.submitted_s, 4),
            "finish_s": round(result.finish_s, 4),
        },
        "stages_busy_s": {k: round(v, 4) for k, v in result.busy_s.items()},
        "notes": notes,
    }


def upscale_videos(
    jobs: list[VideoJob],
    runner: Any,
    spec: ModelSpec,
    opts: VideoOptions,
    *,
    progress: Progress | None = None,
    warn: Callable[[str], None] | None = None,
    on_error: Callable[[Path, str], None] | None = None,
) -> dict[str, Any]:
    """Every job; with several, a bad video is reported through `on_error` and skipped (as images)."""
    from srx.errors import SrxError

    done, failed = [], []
    for job in jobs:
        try:
            done.append(upscale_video(job, runner, spec, opts, progress=progress, warn=warn))
        except SrxError as e:
            if len(jobs) == 1:
                raise
            failed.append({"input": str(job.src), "error": str(e)})
            if on_error:
                on_error(job.src, str(e))
    return {"outputs": done, "failed": failed}
