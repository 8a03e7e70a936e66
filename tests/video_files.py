"""Small test videos written with PyAV (issue 15: 48 frames, 96x64, with audio; CFR and VFR).

Each writer returns what it wrote (frame timestamps, the audio packets' bytes are read back
by the tests from the file itself), so tests compare outputs with facts, not with srx.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from srx.bench.inputs import synthetic_image

FORMATS = {".mp4": "mp4", ".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".h264": "h264"}
SRT = "1\n00:00:00,500 --> 00:00:01,000\nHello\n\n2\n00:00:01,200 --> 00:00:01,800\nWorld\n\n"


@dataclass
class Written:
    path: Path
    times: list[Fraction]  # presentation time of every frame, in order
    size: tuple[int, int]  # width, height


def frame_pixels(i: int, width: int, height: int, seed: int = 3) -> np.ndarray:
    """A natural-looking picture that moves: frame i is the base image shifted by i pixels."""
    base = synthetic_image(height, width + 64, seed).transpose(1, 2, 0)
    return np.ascontiguousarray((base[:, i % 64 : i % 64 + width] * 255 + 0.5).astype(np.uint8))


def write_video(
    path: Path,
    *,
    frames: int = 48,
    size: tuple[int, int] = (96, 64),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    vfr: bool = False,
    audio: str | None = "aac",
    subtitles: bool = False,
    options: dict[str, str] | None = None,
    seconds_of_audio: float | None = None,
    rotation: int | None = None,
) -> Written:
    """CFR: 24 fps in time base 1/24. VFR: time base 1/1000, frame durations 40, 50, 60 ms in turn."""
    import av

    w, h = size
    out = av.open(str(path), "w", format=FORMATS[path.suffix])
    tb = Fraction(1, 1000) if vfr else Fraction(1, 24)
    vs = out.add_stream(codec, rate=24)
    vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
    vs.codec_context.time_base = tb
    vs.options = {"preset": "ultrafast", **(options or {})} if codec == "libx264" else dict(options or {})
    if rotation is not None:
        vs.set_display_rotation(rotation)  # as a phone films portrait video
    a = None
    if audio:
        a = out.add_stream(audio, rate=48000)
        a.layout = "stereo"
    sub_src = None
    if subtitles:
        srt = path.with_suffix(".srt")
        srt.write_text(SRT)
        sub_src = av.open(str(srt))
        sub_out = out.add_stream_from_template(sub_src.streams[0])
    times, pts = [], 0
    for i in range(frames):
        f = av.VideoFrame.from_ndarray(frame_pixels(i, w, h), format="rgb24")
        f.pts, f.time_base = pts, tb
        times.append(pts * tb)
        out.mux(vs.encode(f))
        pts += (40 + 10 * (i % 3)) if vfr else 1
    out.mux(vs.encode(None))
    if a is not None:
        total = int(48000 * (seconds_of_audio or frames / 24))
        t = 0
        while t < total:
            n = min(1024, total - t)
            x = (0.2 * np.sin(2 * np.pi * 440 * np.arange(t, t + n) / 48000)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(np.stack([x, x]), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, t
            out.mux(a.encode(af))
            t += n
        out.mux(a.encode(None))
    if sub_src is not None:
        for p in sub_src.demux(sub_src.streams[0]):
            if p.dts is not None:
                p.stream = sub_out
                out.mux(p)
        sub_src.close()
    out.close()
    return Written(path, times, size)


def write_raw_h264(path: Path, sizes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """A raw H.264 stream (no container, no timestamps) whose frame size changes where `sizes`
    does: each run of equal sizes is encoded on its own and the bitstreams are concatenated,
    which H.264 allows (a new SPS starts each run)."""
    import av

    runs: list[tuple[tuple[int, int], int]] = []
    for s in sizes:
        if runs and runs[-1][0] == s:
            runs[-1] = (s, runs[-1][1] + 1)
        else:
            runs.append((s, 1))
    data, i = b"", 0
    for (w, h), n in runs:
        cc = av.CodecContext.create("libx264", "w")
        cc.width, cc.height, cc.pix_fmt = w, h, "yuv420p"
        cc.time_base = Fraction(1, 24)
        cc.options = {"preset": "ultrafast", "bf": "0"}
        for _ in range(n):
            f = av.VideoFrame.from_ndarray(frame_pixels(i, w, h), format="rgb24").reformat(format="yuv420p")
            f.pts = i
            data += b"".join(bytes(p) for p in cc.encode(f))
            i += 1
        data += b"".join(bytes(p) for p in cc.encode(None))
    path.write_bytes(data)
    return sizes


def decoded_times(path: Path) -> list[Fraction]:
    import av

    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


def packets(path: Path, kind: str) -> list[tuple[Fraction | None, bytes]]:
    """(presentation time, bytes) of every packet of the first `kind` stream."""
    import av

    with av.open(str(path)) as c:
        stream = next(s for s in c.streams if s.type == kind)
        return [
            (None if p.pts is None else p.pts * p.time_base, bytes(p)) for p in c.demux(stream) if p.dts is not None
        ]
