"""srx upscale on videos (issue 15): frames, timestamps, copied streams, exactness, clips, folders.

Test videos are written with PyAV (tests/video_files.py): 48 frames of 96x64 with an AAC
track, constant (24 fps) and variable frame rate, plus lossless ones (FFV1 RGB, x264 at
qp 0) for the comparison with the image path. The model is a 1.7k-parameter SAFMN x2, so
each run takes a fraction of a second; the real CLI runs in a subprocess where exit codes
and stderr matter, the library in-process elsewhere.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_srx
from PIL import Image

av = pytest.importorskip("av", reason="PyAV is the 'video' extra: pip install 'srx[video]'")

from video_files import decoded_times, packets, write_raw_h264, write_video  # noqa: E402

from srx.images import read_image  # noqa: E402
from srx.models import build_model  # noqa: E402
from srx.runtime.registry import open_runner  # noqa: E402
from srx.runtime.source import ModelSource  # noqa: E402
from srx.upscale import upscale_image  # noqa: E402
from srx.video.reader import Clip  # noqa: E402
from srx.video.upscale import VideoJob, VideoOptions, upscale_video  # noqa: E402

TINY = {"dim": 8, "n_blocks": 1}
# The documented decode conversion (docs/video.md): bicubic chroma, accurate rounding.
INTERP = av.video.reformatter.Interpolation
DECODE = INTERP.BICUBIC | INTERP.ACCURATE_RND | INTERP.FULL_CHR_H_INT


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("w")
    out = {}
    for scale in (2, 3):
        model = build_model("safmn", scale, **TINY, seed=9)
        path = folder / f"tiny_x{scale}.pth"
        torch.save({"params": model.state_dict()}, path)
        out[scale] = (path, model)
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    return {
        "cfr": write_video(d / "cfr.mp4"),
        "vfr": write_video(d / "vfr.mkv", vfr=True),
        "subs": write_video(d / "subs.mkv", vfr=True, subtitles=True),
        "rgb": write_video(d / "rgb.mkv", codec="ffv1", pix_fmt="bgr0", audio=None, frames=12),
        "yuv": write_video(d / "yuv.mkv", options={"qp": "0"}, audio=None, frames=12),
    }


def upscale(src: Path, dst: Path, model, *, warn=None, **options) -> dict:
    """The library path of `srx upscale VIDEO` with the PyTorch backend on the CPU."""
    with open_runner("torch", ModelSource.from_module(model), "cpu") as runner:
        return upscale_video(VideoJob(src, dst), runner, model.spec, VideoOptions(**options), warn=warn)


def decoded_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24", interpolation=DECODE) for f in c.decode(video=0)]


def image_path_outputs(frames: list[np.ndarray], folder: Path, weights: Path, *extra: str) -> list[np.ndarray]:
    """`srx upscale` (the image path, real CLI) of every frame saved as a PNG."""
    src, out = folder / "frames", folder / "frames_up"
    src.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(src / f"{i:03d}.png")
    proc = run_srx("upscale", str(src), "-o", str(out), "--weights", str(weights), "--backend", "torch", *extra)
    assert proc.returncode == 0, proc.stderr
    return [np.asarray(Image.open(out / f"{i:03d}.png")) for i in range(len(frames))]


# -- the CLI end to end ----------------------------------------------------------------------------


def test_mp4_keeps_frames_timestamps_and_audio(tmp_path, models, videos):
    weights, _ = models[2]
    src = videos["cfr"].path
    out = tmp_path / "out.mp4"
    args = ["-o", str(out), "--weights", str(weights), "--backend", "torch", "--json", str(tmp_path / "r.json")]
    proc = run_srx("upscale", str(src), *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", "stderr must stay quiet off a terminal (no progress bar, no warning)"
    assert "out.mp4 (96x64 -> 192x128, 48 frames, libx264 crf 18 yuv420p" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4", "r.json"], "a temporary file was left"
    record = json.loads((tmp_path / "r.json").read_text())["outputs"][0]
    assert record["frames"] == 48 and record["size_out"] == "192x128"
    assert record["encoding"]["encoder"] == "libx264" and record["encoding"]["pix_fmt"] == "yuv420p"
    assert decoded_times(out) == decoded_times(src) == videos["cfr"].times
    assert packets(out, "audio") == packets(src, "audio"), "the audio stream must be copied bit for bit"
    with av.open(str(out)) as c:
        vs = c.streams.video[0]
        assert (vs.codec_context.name, vs.width, vs.height, vs.codec_context.format.name) == (
            "h264",
            192,
            128,
            "yuv420p",
        )
        assert vs.average_rate == 24


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".mov"])
def test_variable_frame_rate_timestamps_are_kept(tmp_path, models, videos, suffix):
    _, model = models[2]
    src = videos["vfr"].path
    out = tmp_path / f"out{suffix}"
    record = upscale(src, out, model)
    assert record["frames"] == 48
    assert decoded_times(out) == videos["vfr"].times
    durations = {b - a for a, b in zip(videos["vfr"].times[:-1], videos["vfr"].times[1:], strict=True)}
    assert durations == {Fraction(40, 1000), Fraction(50, 1000), Fraction(60, 1000)}, "the input is not VFR"
    assert [b for _, b in packets(out, "audio")] == [b for _, b in packets(src, "audio")]
    assert [t for t, _ in packets(out, "audio")] == [t for t, _ in packets(src, "audio")]


def test_mp4_to_mkv_shifts_every_stream_alike(tmp_path, models, videos):
    """Matroska has no negative timestamps: FFmpeg moves the AAC priming packet (-1024 samples,
    -21.3 ms, in the mp4) to 0 and every other packet by the same amount, so audio and video
    stay in sync (to Matroska's millisecond)."""
    _, model = models[2]
    src, out = videos["cfr"].path, tmp_path / "out.mkv"
    upscale(src, out, model)
    t_in, t_out = decoded_times(src), decoded_times(out)
    a_in, a_out = packets(src, "audio"), packets(out, "audio")
    shift = Fraction(1024, 48000)
    assert a_in[0][0] == -shift and a_out[0][0] == 0
    ms = Fraction(1, 1000)  # Matroska's tick: each timestamp and the shift are rounded to it
    assert len(t_out) == len(t_in) == 48
    assert all(abs(b - (a + shift)) <= ms for a, b in zip(t_in, t_out, strict=True)), (t_in[:3], t_out[:3])
    assert [b for _, b in a_out] == [b for _, b in a_in]
    assert all(abs(b - (a + shift)) <= ms for (a, _), (b, _) in zip(a_in, a_out, strict=True))


def test_subtitles_are_copied(tmp_path, models, videos):
    _, model = models[2]
    src, out = videos["subs"].path, tmp_path / "out.mkv"
    upscale(src, out, model)
    subs = packets(out, "subtitle")
    assert subs == packets(src, "subtitle") and [b for _, b in subs] == [b"Hello", b"World"]


# -- every frame is what srx upscale makes of the decoded frame ----------------------------------------


@pytest.mark.parametrize("batch", [1, 3])
def test_lossless_rgb_output_equals_the_image_path(tmp_path, models, videos, batch):
    """FFV1 RGB in, FFV1 RGB out (the input's codec and pixel format kept): no encoder loss,
    so one frame at a time must equal the image path's output exactly. A batch of frames runs
    as one batched convolution, which oneDNN may sum in another order (it did on an AVX2 CPU,
    not on AVX-512 ones): a value near a half level then rounds the other way, so batches get
    1 level on at most 0.1% of the values, still enough to catch a frame out of place."""
    weights, model = models[2]
    src, out = videos["rgb"].path, tmp_path / "out.mkv"
    record = upscale(src, out, model, batch=batch)
    assert (record["encoding"]["encoder"], record["encoding"]["pix_fmt"]) == ("ffv1", "bgr0")
    expected = image_path_outputs(decoded_rgb(src), tmp_path, weights)
    got = decoded_rgb(out)
    assert len(got) == len(expected) == 12
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        diff = np.abs(g.astype(int) - e)
        if batch == 1:
            assert np.array_equal(g, e), f"frame {i}: max difference {diff.max()}"
        else:
            assert diff.max() <= 1 and np.count_nonzero(diff) <= diff.size // 1000, (
                f"frame {i}: max difference {diff.max()}, {np.count_nonzero(diff)} of {diff.size} values differ"
            )


def test_lossless_yuv420_output_equals_the_image_path_through_the_same_conversion(tmp_path, models, videos):
    """x264 at crf 0 (lossless) in 4:2:0: each output frame's planes are the image path's output
    converted to yuv420p the documented way (bicubic chroma), bit for bit."""
    weights, model = models[2]
    src, out = videos["yuv"].path, tmp_path / "out.mkv"
    upscale(src, out, model, codec="libx264", crf=0)
    expected = image_path_outputs(decoded_rgb(src), tmp_path, weights)
    with av.open(str(out)) as c:
        got = list(c.decode(video=0))
    assert len(got) == len(expected) == 12
    for i, (frame, rgb) in enumerate(zip(got, expected, strict=True)):
        ref = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
            format="yuv420p", interpolation=INTERP.BICUBIC
        )
        for p, (a, b) in enumerate(zip(_planes(frame), _planes(ref), strict=True)):
            assert np.array_equal(a, b), f"frame {i} plane {p}: max difference {np.abs(a.astype(int) - b).max()}"


def _planes(frame) -> list[np.ndarray]:
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in frame.planes]


def test_tiled_frames_equal_the_tiled_image_path(tmp_path, models, videos):
    _, model = models[2]
    src, out = videos["rgb"].path, tmp_path / "out.mkv"
    record = upscale(src, out, model, tile=32)
    assert record["tiling"]["tile"] == 32 and record["tiling"]["exact"]
    frames = decoded_rgb(src)
    with open_runner("torch", ModelSource.from_module(model), "cpu") as runner:
        for i, f in enumerate(frames):
            Image.fromarray(f).save(tmp_path / f"{i}.png")
            expected, _, n = upscale_image(read_image(tmp_path / f"{i}.png"), runner.run, model.spec, tile=32)
            assert n == 6 and np.array_equal(decoded_rgb(out)[i], expected), f"frame {i}"


# -- formats, clips, folders ---------------------------------------------------------------------------


def test_ten_bit_input_stays_ten_bit(tmp_path, models):
    _, model = models[2]
    src = write_video(tmp_path / "10bit.mkv", pix_fmt="yuv420p10le", audio=None, frames=6)
    record = upscale(src.path, tmp_path / "out.mkv", model)
    assert record["source"]["bit_depth"] == 10 and record["encoding"]["pix_fmt"] == "yuv420p10le"
    with av.open(str(tmp_path / "out.mkv")) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 6 and {f.format.name for f in frames} == {"yuv420p10le"}


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_display_rotation_is_kept(tmp_path, models, suffix):
    _, model = models[2]
    src = write_video(tmp_path / "portrait.mp4", rotation=90, audio=None, frames=3)
    upscale(src.path, tmp_path / f"out{suffix}", model)
    with av.open(str(tmp_path / f"out{suffix}")) as c:
        frames = list(c.decode(video=0))
    assert [(f.rotation, f.width, f.height) for f in frames] == [(90, 192, 128)] * 3


def test_start_and_duration_cut_every_stream_at_the_same_time(tmp_path, models, videos):
    _, model = models[2]
    src = videos["subs"].path
    out = tmp_path / "clip.mkv"
    record = upscale(src, out, model, clip=Clip(start=0.5, duration=1.0))
    lo, hi = Fraction(1, 2), Fraction(3, 2)
    expected = [t - lo for t in videos["subs"].times if lo <= t < hi]
    assert decoded_times(out) == expected and record["frames"] == len(expected) == 19
    audio_in = [(t - lo, b) for t, b in packets(src, "audio") if lo <= t < hi]
    assert packets(out, "audio") == audio_in
    assert packets(out, "subtitle") == [(Fraction(0), b"Hello"), (Fraction(7, 10), b"World")]


def test_a_folder_of_videos_keeps_names_and_resizes_a_size_change(tmp_path, models, videos):
    """A raw .h264 stream (no container, no timestamps) whose size changes mid-way: written as
    .mkv (srx does not write raw streams), timed at its frame rate, later frames resized to the
    first size, both said on stderr."""
    weights, _ = models[2]
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(videos["cfr"].path.read_bytes())
    write_raw_h264(folder / "b.h264", [(96, 64)] * 10 + [(128, 80)] * 10)
    out = tmp_path / "out"
    proc = run_srx("upscale", str(folder), "-o", str(out), "--weights", str(weights), "--backend", "torch")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mkv"]
    warnings = proc.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("srx: warning: ") for w in warnings), proc.stderr
    assert "frame size changes mid-stream (96x64 -> 128x80 at frame 10)" in proc.stderr
    assert "have no timestamp" in proc.stderr
    with av.open(str(out / "b.mkv")) as c:
        frames = [(f.width, f.height, f.pts * f.time_base) for f in c.decode(video=0)]
    assert [f[:2] for f in frames] == [(192, 128)] * 20
    assert [f[2] for f in frames] == [Fraction(i, 25) for i in range(20)]  # FFmpeg's 25 fps for raw H.264
    assert decoded_times(out / "a.mp4") == videos["cfr"].times


def test_existing_outputs_are_refused_skipped_or_replaced_as_for_images(tmp_path, models, videos):
    """A video output that exists is never replaced silently: one line and exit 2 before any
    work, --skip-existing leaves it, --overwrite replaces it; image-only naming flags are refused."""
    weights, _ = models[2]
    out = tmp_path / "o.mp4"
    out.write_bytes(b"earlier result")
    base = ["upscale", str(videos["cfr"].path), "-o", str(out), "--weights", str(weights), "--backend", "torch"]
    refused = run_srx(*base)
    assert refused.returncode == 2 and "exists already" in refused.stderr and "--overwrite" in refused.stderr
    assert out.read_bytes() == b"earlier result"
    skipped = run_srx(*base, "--skip-existing", "--json", "-")
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout)["skipped"] == [str(videos["cfr"].path)]
    assert out.read_bytes() == b"earlier result"
    replaced = run_srx(*base, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert decoded_times(out) == videos["cfr"].times
    suffix = run_srx(*base, "--overwrite", "--suffix", "_x2")
    assert suffix.returncode == 2 and "apply to images" in suffix.stderr


def test_odd_output_sides_are_cut_to_even_for_4_2_0(tmp_path, models):
    _, model = models[3]
    src = write_video(tmp_path / "odd.mkv", codec="ffv1", pix_fmt="yuv420p", size=(33, 21), audio=None, frames=3)
    notes = []
    record = upscale(src.path, tmp_path / "out.mkv", model, warn=notes.append)
    assert record["size_out"] == "98x62"
    assert len(notes) == 1 and "yuv420p needs even sides: the 99x63 output is cut to 98x62" in notes[0]
    with av.open(str(tmp_path / "out.mkv")) as c:
        assert {(f.width, f.height) for f in c.decode(video=0)} == {(98, 62)}


def test_progress_shows_frames_rate_and_time_left_on_a_terminal(tmp_path, models, videos):
    """stderr on a pseudo-terminal: tqdm's bar counts the frames and shows a rate and the time
    left (off a terminal the first test checks that stderr stays empty)."""
    import fcntl
    import os
    import pty
    import re
    import select
    import struct
    import subprocess
    import sys
    import termios
    import time

    from conftest import REPO

    weights, _ = models[2]
    master, slave = pty.openpty()
    # A new pty is 0 columns wide, and tqdm draws nothing in 0 columns: give it a terminal's size.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    # The 48 tiny frames take well under a second and tqdm redraws at most every 0.1 s by
    # default; redrawing on every update makes what the bar shows independent of the speed.
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_MININTERVAL": "0"}
    args = [str(videos["cfr"].path), "-o", str(tmp_path / "o.mkv"), "--weights", str(weights), "--backend", "torch"]
    with open(tmp_path / "stdout.txt", "wb") as stdout:
        proc = subprocess.Popen([sys.executable, "-m", "srx", "upscale", *args], stdout=stdout, stderr=slave, env=env)
    os.close(slave)
    shown, deadline = b"", time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1.0)[0]:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every holder of the terminal closed it (the process ended)
                break
            if not chunk:
                break
            shown += chunk
        else:
            proc.kill()
            pytest.fail("srx upscale did not finish within 300 s")
    finally:
        os.close(master)
    assert proc.wait(timeout=60) == 0, shown.decode("utf-8", "replace")[-500:]
    text = shown.decode("utf-8", "replace")
    assert "srx: error" not in text and "Traceback" not in text, text[-500:]
    # tqdm's "N/48 [elapsed<left, RATEframe/s]", once a frame is done (before: "?frame/s").
    drawn = re.findall(r"cfr\.mp4: +\d+%\|[^|]*\| (\d+)/48 \[\d\d:\d\d<(\d\d:\d\d), +(\d+(?:\.\d+)?)frame/s\]", text)
    assert drawn, f"no progress bar with a frame count, the time left and a rate: {text[-500:]!r}"
    counts = [int(n) for n, _, _ in drawn]
    assert counts == sorted(counts) and counts[-1] == 48, f"frames counted: {counts}"
    assert all(float(rate) > 0 for _, _, rate in drawn)
    assert "48 frames" in (tmp_path / "stdout.txt").read_text(), "the summary goes to stdout, not the terminal"


# -- srx bench --video ----------------------------------------------------------------------------------


def test_bench_video_times_the_pipeline_per_stage(tmp_path, models, videos):
    weights, _ = models[2]
    proc = run_srx(
        "bench", "--video", str(videos["cfr"].path), "--weights", str(weights), "--backends", "torch",
        "--runs", "4", "--warmup", "1", "--json", str(tmp_path / "b.json"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "b.json").read_text())
    row = result["results"][0]
    pipe = row["pipeline"]
    assert row["status"] == "ok" and pipe["frames"] == 5 and pipe["steady_frames"] == 4
    assert set(pipe["stages"]) == {"decode", "stage", "copy", "infer", "readback", "encode"}
    assert all(s["busy_s"] > 0 for k, s in pipe["stages"].items() if k != "copy")
    assert row["model_only"]["fps"] > 0 and 0 < pipe["vs_model_only"] == pytest.approx(
        pipe["steady_fps"] / row["model_only"]["fps"], rel=1e-3
    )
    assert result["input"] == "96x64" and result["output"] == "192x128"
    assert "end to end / model only" in proc.stdout and "infer" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json"]
