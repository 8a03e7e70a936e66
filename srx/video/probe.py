"""What a video file holds, read once before any work; files srx cannot upscale are refused here.

Refused with one line (BadInput, exit 2): a missing, unreadable or empty file; a file
FFmpeg cannot open (not a video, damaged, or an mp4 cut before its index); no video
stream (an audio file, or only cover art); a video codec this FFmpeg build cannot decode;
a zero frame size. Damage FFmpeg only finds while decoding (a truncated Matroska file, a
broken packet) is the reader's (srx.video.reader).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from srx.errors import BadInput
from srx.video.avlib import ffmpeg_message, require_av


@dataclass(frozen=True)
class ColorTags:
    """FFmpeg's colour description of the video (AVColorRange / AVColorSpace / ... values).
    Decoded frames are converted to RGB with their own tags; the output is converted back
    and tagged with these, so the colours mean the same in and out."""

    range: int = 0  # 0 unspecified, 1 limited (MPEG), 2 full (JPEG)
    space: int = 2  # matrix: 1 BT.709, 5/6 BT.601, 9 BT.2020 NCL, 0 RGB, 2 unspecified
    primaries: int = 2
    trc: int = 2

    def to_dict(self) -> dict[str, int]:
        return {"range": self.range, "space": self.space, "primaries": self.primaries, "trc": self.trc}


@dataclass(frozen=True)
class SideStream:
    """A stream copied unchanged (audio, subtitles) or left out (data: timecodes, chapters' text...)."""

    index: int
    kind: str  # audio, subtitle, data, attachment
    codec: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "codec": self.codec}


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    format: str  # FFmpeg demuxer name(s), e.g. 'mov,mp4,m4a,3gp,3g2,mj2'
    stream_index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int  # bits per sample of the widest component (8 for yuv420p, 10 for yuv420p10le)
    has_alpha: bool
    time_base: Fraction
    rate: Fraction | None  # average frame rate, or FFmpeg's guess; None if unknown
    frames: int | None  # frame count the container declares (None when it does not)
    duration: float | None  # seconds, the container's (longest stream)
    start: float  # seconds, the container's first timestamp
    color: ColorTags = field(default_factory=ColorTags)
    side: tuple[SideStream, ...] = ()
    # How players turn the picture (phone videos: a 90 degree rotation), FFmpeg's 3x3 display
    # matrix as 9 int32; copied to the output stream, which would otherwise play sideways.
    display_matrix: tuple[int, ...] | None = None

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format,
            "codec": self.codec,
            "size": self.size,
            "pix_fmt": self.pix_fmt,
            "bit_depth": self.bit_depth,
            "frame_rate": None if self.rate is None else str(self.rate),
            "time_base": str(self.time_base),
            "frames_declared": self.frames,
            "duration_s": self.duration,
            "color": self.color.to_dict(),
            "streams": [s.to_dict() for s in self.side],
            "display_matrix": None if self.display_matrix is None else list(self.display_matrix),
        }


def _check_file(p: Path) -> None:
    try:
        size = p.stat().st_size
        with open(p, "rb"):
            pass
    except FileNotFoundError as e:
        raise BadInput(f"{p} does not exist: check the path") from e
    except OSError as e:
        raise BadInput(f"{p}: cannot read it ({e.strerror or e}): check its permissions") from e
    if size == 0:
        raise BadInput(f"{p}: empty file (0 bytes): copy or download it again")


def pick_video_stream(container: Any) -> Any:
    """The first real video stream: cover art in an audio file is a one-picture 'video' stream."""
    av = require_av()
    for s in container.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic:
            return s
    return None


def format_bits(pix_fmt: str) -> tuple[int, bool]:
    """(bits per sample, has alpha) of an FFmpeg pixel format."""
    av = require_av()
    fmt = av.VideoFormat(pix_fmt)
    comps = list(fmt.components)
    bits = max((c.bits for c in comps), default=8)
    return bits, pix_fmt.startswith(("yuva", "gbrap", "rgba", "bgra", "argb", "abgr", "ya"))


def probe(path: str | Path) -> VideoInfo:
    """Open `path` with FFmpeg and describe its video stream and the streams around it."""
    p = Path(path)
    _check_file(p)
    av = require_av()
    try:
        container = av.open(str(p), metadata_errors="replace")
    except av.error.FFmpegError as e:
        raise BadInput(
            f"{p}: FFmpeg cannot read it as a video ({ffmpeg_message(e)}): the file is damaged, "
            "truncated or not a video; download or export it again"
        ) from e
    with container:
        vs = pick_video_stream(container)
        if vs is None:
            what = "only cover art" if container.streams.video else "no video stream"
            kinds = sorted({s.type for s in container.streams}) or ["no streams"]
            raise BadInput(f"{p}: has {what} (it holds {', '.join(kinds)}): give a video file")
        cc = vs.codec_context
        if cc is None:
            raise BadInput(
                f"{p}: its video codec is not one this FFmpeg build can decode: "
                "convert it to H.264 or another common codec first"
            )
        width, height = int(cc.width), int(cc.height)
        if width <= 0 or height <= 0 or cc.format is None:
            raise BadInput(
                f"{p}: its video stream declares no frame size or pixel format (damaged header): "
                "download or export it again"
            )
        pix_fmt = cc.format.name
        bits, alpha = format_bits(pix_fmt)
        rate = vs.average_rate or vs.guessed_rate
        side = tuple(SideStream(s.index, s.type, _codec_name(s)) for s in container.streams if s.index != vs.index)
        matrix = _display_matrix(container, vs)
        return VideoInfo(
            path=p,
            format=container.format.name,
            stream_index=vs.index,
            codec=cc.codec.canonical_name,
            width=width,
            height=height,
            pix_fmt=pix_fmt,
            bit_depth=bits,
            has_alpha=alpha,
            time_base=vs.time_base or Fraction(1, 90000),
            rate=Fraction(rate) if rate else None,
            frames=int(vs.frames) or None,
            duration=None if container.duration is None else container.duration / 1e6,
            start=0.0 if container.start_time is None else container.start_time / 1e6,
            color=ColorTags(int(cc.color_range), int(cc.colorspace), int(cc.color_primaries), int(cc.color_trc)),
            side=side,
            display_matrix=matrix,
        )


def _codec_name(stream: Any) -> str:
    """The codec's FFmpeg name (h264, aac, subrip), not its decoder's (libdav1d): what muxers list."""
    cc = getattr(stream, "codec_context", None)
    if cc is not None:
        return str(cc.codec.canonical_name)
    return str(getattr(stream, "codec_tag", "") or "unknown")


def _display_matrix(container: Any, vs: Any) -> tuple[int, ...] | None:
    """The first frame's display matrix (FFmpeg hands the container's to every decoded frame).
    Damage found here is the reader's to report, with its position."""
    av = require_av()
    import numpy as np

    try:
        for frame in container.decode(vs):
            sd = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
            return None if sd is None else tuple(int(v) for v in np.frombuffer(bytes(sd), "<i4"))
    except av.error.FFmpegError:
        return None
    return None
