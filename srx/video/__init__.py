"""srx upscale for video files (issue 15), with PyAV (FFmpeg's libraries as wheels).

Data flows one way, one module per step:

    probe.py     file -> VideoInfo               (what is in it; bad inputs refused here)
    encoding.py  VideoInfo + options -> Encoding (container, encoder, pixel format, colours)
    reader.py    file -> decoded RGB frames + the audio / subtitle packets to copy
    frames.py    RGB frames -> model input -> upscaled RGB frames (host arrays; srx's tiling)
    cuda.py      the same on a CUDA GPU with pinned buffers and a copy stream
    writer.py    upscaled frames + copied packets -> output file (atomically)
    pipeline.py  the threads and bounded queues that overlap those steps, timed per stage
    upscale.py   jobs (inputs -> outputs) and one video end to end with a Runner
    bench.py     srx bench --video: the whole pipeline against the model alone
    command.py   what the CLI calls (cli.py stays a thin adapter)

This module is imported by the CLI to recognise video paths, so it must not import PyAV:
`import srx` and `srx --help` work without it (tests/test_import_light.py).
"""

from __future__ import annotations

from pathlib import Path

# Files `srx upscale` treats as videos. FFmpeg reads many more containers; these are the
# ones a user names as video and that srx's tests or FFmpeg's demuxers cover.
VIDEO_SUFFIXES = (
    ".mp4",
    ".m4v",
    ".mkv",
    ".webm",
    ".mov",
    ".avi",
    ".ts",
    ".m2ts",
    ".mts",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
    ".3gp",
    ".y4m",
    ".h264",
    ".264",
    ".hevc",
    ".265",
    ".ivf",
)

# Containers srx writes, by output suffix (FFmpeg muxer names).
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".webm": "webm", ".mov": "mov"}


def is_video(path: str | Path) -> bool:
    """Whether `path` names a video file by its suffix (the file is not opened)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_files(folder: Path) -> list[Path]:
    """Videos directly in `folder` (not recursive), sorted by name; hidden files skipped (srx.filekinds.files_in)."""
    from srx.filekinds import files_in

    return files_in(folder, VIDEO_SUFFIXES, recursive=False)
