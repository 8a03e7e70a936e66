"""Bad video inputs and options (issue 15): one line on stderr, exit 2, nothing left behind.

Damaged files are made from good ones the way they break in practice: cut in half (a
download that stopped: an mp4 whose index is at the end cannot be opened; one whose index
is at the front, and a Matroska file, open and decode up to the cut without an error, so
srx compares the end with the declared duration), random bytes, an empty file, a file
without a video stream, and a video codec FFmpeg does not know (the Matroska codec id
renamed). They run in-process (srx.cli.main, robust.run_inprocess); one case checks
that the real subprocess says the same.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_srx
from robust import files_under, run_inprocess, save_checkpoint, save_image, tiny_model

av = pytest.importorskip("av", reason="PyAV is the 'video' extra: pip install 'srx[video]'")

from video_files import write_video  # noqa: E402


def _remux(src: Path, dst: Path, **options: str) -> None:
    with av.open(str(src)) as c, av.open(str(dst), "w", options=options) as o:
        streams = {s.index: o.add_stream_from_template(s) for s in c.streams}
        for p in c.demux():
            if p.dts is not None:
                p.stream = streams[p.stream.index]
                o.mux(p)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad_videos")
    save_checkpoint(d / "tiny.pth", tiny_model())
    good = write_video(d / "good.mp4").path
    mkv = write_video(d / "good.mkv", vfr=True, subtitles=True).path
    _remux(good, d / "faststart.mp4", movflags="faststart")
    for name in ("good.mp4", "good.mkv", "faststart.mp4"):
        data = (d / name).read_bytes()
        (d / f"half_{name}").write_bytes(data[: len(data) // 2])
    (d / "random.mp4").write_bytes(os.urandom(20_000))
    (d / "empty.mkv").write_bytes(b"")
    with av.open(str(d / "music.m4a"), "w", format="mp4") as o:  # audio only
        a = o.add_stream("aac", rate=48000)
        a.layout = "stereo"
        import numpy as np

        f = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        f.sample_rate, f.pts = 48000, 0
        o.mux(a.encode(f))
        o.mux(a.encode(None))
    (d / "music.mp4").write_bytes((d / "music.m4a").read_bytes())
    data = mkv.read_bytes()
    assert b"V_MPEG4/ISO/AVC" in data
    (d / "unknown_codec.mkv").write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_SRXTEST/UNKNO", 1))
    save_image(d / "photo.png", 16, 16)
    return d


CASES = {
    "random bytes": (["random.mp4"], [], "FFmpeg cannot read it as a video"),
    "empty file": (["empty.mkv"], [], "empty file (0 bytes)"),
    "mp4 cut before its index": (["half_good.mp4"], [], "FFmpeg cannot read it as a video"),
    "mp4 cut after its index": (
        ["half_faststart.mp4"],
        [],
        "truncated or damaged; download it again, or give --duration",
    ),
    "mkv cut in half": (["half_good.mkv"], [], "truncated or damaged; download it again, or give --duration"),
    "no video stream": (["music.mp4"], [], "has no video stream (it holds audio): give a video file"),
    "unknown video codec": (["unknown_codec.mkv"], [], "its video codec is not one this FFmpeg build can decode"),
    "unknown encoder": (["good.mp4"], ["--codec", "nosuch"], "--codec nosuch: this FFmpeg build has no such encoder"),
    "codec the container cannot hold": (["good.mp4"], ["--codec", "h264", "-o", "out.webm"], "cannot hold h264 video"),
    "audio the container cannot hold": (["good.mp4"], ["-o", "out.webm"], "audio stream #1 (aac) cannot be copied"),
    "subtitles in mp4": (["good.mkv"], ["-o", "out.mp4"], "subtitle stream #2 (subrip) cannot be copied into .mp4"),
    "crf out of range": (["good.mp4"], ["--crf", "60"], "--crf 60 is outside libx264's range 0..51"),
    "crf for a lossless codec": (["good.mkv"], ["--codec", "ffv1", "--crf", "5"], "--crf does not apply to ffv1"),
    "unknown preset": (["good.mp4"], ["--preset", "warp9"], "--preset warp9: libx264 has ultrafast, superfast"),
    "output format srx does not write": (["good.mp4"], ["-o", "out.avi"], "srx writes .mp4, .mkv, .webm or .mov"),
    "batch 0": (["good.mp4"], ["--batch", "0"], "--batch 0: need at least 1 frame"),
    "negative start": (["good.mp4"], ["--start", "-1"], "--start -1.0: give a time in seconds"),
    "zero duration": (["good.mp4"], ["--duration", "0"], "--duration 0.0: give a length in seconds"),
    "clip after the end": (
        ["good.mp4"],
        ["--start", "60"],
        "no frame could be decoded in the --start / --duration window",
    ),
    "images and videos": (["good.mp4", "photo.png"], [], "images and videos in one command"),
    "video options on images": (
        ["photo.png"],
        ["--crf", "20", "-o", "out"],
        "apply to videos; these inputs are images",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_video_input(case: str, ws: Path, tmp_path: Path) -> None:
    inputs, extra, message = CASES[case]
    out = tmp_path / "out"
    out.mkdir()
    args = [*(str(ws / i) for i in inputs), *extra]
    if "-o" in extra:
        i = args.index("-o")
        args[i + 1] = str(out / args[i + 1])
    else:
        args += ["-o", str(out / ("up" + Path(inputs[0]).suffix)) if len(inputs) == 1 else str(out)]
    before = files_under(ws)
    result = run_inprocess("upscale", *args, "--weights", str(ws / "tiny.pth"), "--backend", "torch")
    line = assert_one_line_error(result, 2)
    assert message in line, line
    assert files_under(out) == set(), "something was written"
    assert files_under(ws) == before, "an input folder changed"


def test_subprocess_says_the_same(ws: Path, tmp_path: Path) -> None:
    proc = run_srx(
        "upscale", str(ws / "half_good.mkv"), "-o", str(tmp_path / "o.mkv"), "--weights", str(ws / "tiny.pth")
    )
    line = assert_one_line_error(proc, 2)
    assert "truncated or damaged" in line and not list(tmp_path.iterdir())


def test_bench_video_refuses_a_bad_video_before_loading_the_model(ws: Path) -> None:
    result = run_inprocess("bench", "--video", str(ws / "music.mp4"), "--weights", str(ws / "nonexistent.pth"))
    assert "has no video stream" in assert_one_line_error(result, 2)


def test_bench_video_refuses_image_options(ws: Path) -> None:
    result = run_inprocess("bench", "--video", str(ws / "good.mp4"), "--input", "64x64", "--profile")
    assert "--profile, --input cannot be combined with --video" in assert_one_line_error(result, 2)
