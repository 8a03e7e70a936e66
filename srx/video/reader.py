"""Decoding: a video file -> its frames as RGB arrays, in presentation order, with the
timestamps to write, plus the audio / subtitle packets to copy.

Behaviour a user can rely on (docs/video.md):
* timestamps are kept: each frame keeps its presentation timestamp in the stream's time
  base (variable frame rate stays variable); with `--start` every stream is shifted by the
  same amount so the clip starts at 0. A frame without a timestamp (raw .h264 / .hevc
  streams) gets the previous one plus one frame interval; a timestamp that does not
  increase is moved one tick past the previous one (encoders refuse them), and counted;
* `--start S --duration D` keeps the frames shown in [S, S + D) (seconds from the file's
  start) and the copied packets that start in that window (audio is cut at packet
  boundaries, about 20 ms for AAC, not re-encoded);
* a frame-size change mid-stream: later frames are resized (bicubic) to the first size,
  so the output has one size; counted and reported;
* damage: a packet FFmpeg fails to decode stops the work (BadInput, nothing written). A
  file that ends well before the duration its header declares (a cut download) is
  refused the same way, naming `--duration` to upscale what is there. Frames the decoder
  repaired by concealment (flagged corrupt) are counted and reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from srx.errors import BadInput
from srx.video.avlib import ffmpeg_message, require_av
from srx.video.frames import frame_to_rgb
from srx.video.probe import VideoInfo

# A file is called truncated when its last packet ends this much before its declared
# duration: container durations are rounded and audio priming shifts the ends by a few
# tens of ms, so a smaller gap is not evidence of damage.
TRUNCATION_SLACK_S = 0.5


@dataclass
class Decoded:
    index: int  # position in the output, from 0
    pts: int  # timestamp to write, in the video stream's time base
    pixels: np.ndarray  # (H, W, 3) uint8 or uint16 RGB


@dataclass
class ReadStats:
    frames: int = 0
    corrupt_frames: int = 0
    resized_frames: int = 0
    first_size_change: str = ""
    timed_at_rate: int = 0  # frames without a timestamp (raw streams), timed at the frame rate
    moved_timestamps: int = 0  # timestamps that did not increase, moved one tick past the previous
    packets_copied: int = 0
    rate: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "corrupt_frames": self.corrupt_frames,
            "resized_frames": self.resized_frames,
            "timed_at_rate": self.timed_at_rate,
            "moved_timestamps": self.moved_timestamps,
            "packets_copied": self.packets_copied,
        }

    def notes(self) -> list[str]:
        out = []
        if self.corrupt_frames:
            out.append(f"{self.corrupt_frames} frame(s) of the input were damaged; the decoder concealed the damage")
        if self.resized_frames:
            out.append(
                f"the frame size changes mid-stream ({self.first_size_change}): "
                f"{self.resized_frames} frame(s) were resized to the first size before upscaling"
            )
        if self.timed_at_rate:
            out.append(
                f"{self.timed_at_rate} frame(s) have no timestamp (a raw stream?): they were timed at {self.rate} fps"
            )
        if self.moved_timestamps:
            out.append(
                f"{self.moved_timestamps} frame timestamp(s) did not increase and were moved one tick past the previous"
            )
        return out


@dataclass
class Clip:
    start: float | None = None  # seconds from the file's start
    duration: float | None = None
    frames: int | None = None  # at most this many frames (srx bench --video)

    @property
    def active(self) -> bool:
        return self.start is not None or self.duration is not None or self.frames is not None


@dataclass
class _Window:
    """The clip in absolute seconds, and the shift applied to every stream's timestamps."""

    t0: Fraction | None  # None: from the first packet (negative timestamps included: AAC priming in mp4)
    t1: Fraction | None
    shift: Fraction
    ends: dict[int, bool] = field(default_factory=dict)


class VideoReader:
    """Use as a context manager; `items()` yields Decoded frames and av.Packets to copy."""

    def __init__(self, info: VideoInfo, copy_streams: tuple[int, ...], clip: Clip | None = None) -> None:
        self.info = info
        self.copy_streams = copy_streams
        self.clip = clip or Clip()
        self.stats = ReadStats()
        self.container: Any = None

    def __enter__(self) -> VideoReader:
        av = require_av()
        try:
            self.container = av.open(str(self.info.path), metadata_errors="replace")
        except av.error.FFmpegError as e:
            raise BadInput(f"{self.info.path}: FFmpeg cannot read it ({ffmpeg_message(e)})") from e
        return self

    def __exit__(self, *exc: object) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None

    def stream(self, index: int) -> Any:
        return self.container.streams[index]

    def _window(self, vs: Any) -> _Window:
        info, clip = self.info, self.clip
        origin = Fraction(info.start).limit_denominator(10**9)
        begin = origin + Fraction(clip.start or 0).limit_denominator(10**9)
        t1 = None if clip.duration is None else begin + Fraction(clip.duration).limit_denominator(10**9)
        if clip.start is None:
            return _Window(None, t1, Fraction(0))
        return _Window(begin, t1, begin)

    def items(self) -> Iterator[Decoded | Any]:
        av = require_av()
        info = self.info
        vs = self.stream(info.stream_index)
        vs.thread_type = "AUTO"  # frame and slice threads: decoding overlaps the rest anyway
        side = [self.stream(i) for i in self.copy_streams if self.stream(i).type in ("audio", "subtitle")]
        win = self._window(vs)
        if win.t0 is not None and self.clip.start:
            # To the keyframe at or before the start; frames before it are decoded and dropped.
            self.container.seek(math.floor(win.t0 / vs.time_base), stream=vs, backward=True)
        step = max(1, round(1 / (info.rate * vs.time_base))) if info.rate else 1
        self.stats.rate = f"{float(info.rate):g}" if info.rate else "1 tick per frame"
        last_pts: int | None = None
        video_done = False
        seen_end = Fraction(0)
        try:
            for packet in self.container.demux([vs, *side]):
                if packet.stream.index != vs.index:
                    seen_end = max(seen_end, _packet_end(packet))
                    copied = self._side_packet(packet, win, video_done)
                    if copied is not None:
                        yield copied
                    elif video_done and all(win.ends.get(s.index, False) for s in side):
                        break
                    continue
                if video_done:
                    continue
                seen_end = max(seen_end, _packet_end(packet))
                for frame in packet.decode():
                    pts = frame.pts
                    if pts is None:
                        pts = 0 if last_pts is None else last_pts + step
                        self.stats.timed_at_rate += 1
                    t = pts * vs.time_base
                    if win.t0 is not None and t < win.t0:
                        continue
                    if (win.t1 is not None and t >= win.t1) or self.stats.frames == self.clip.frames:
                        win.t1 = t  # copied streams end where the video does
                        video_done = True
                        break
                    if last_pts is not None and pts <= last_pts:
                        pts = last_pts + 1
                        self.stats.moved_timestamps += 1
                    last_pts = pts
                    yield self._decoded(frame, pts - round(win.shift / vs.time_base))
                if video_done and not side:
                    break
        except av.error.FFmpegError as e:
            where = f"after frame {self.stats.frames}" if self.stats.frames else "before the first frame"
            raise BadInput(
                f"{info.path}: damaged video data {where} ({ffmpeg_message(e)}): repair or re-download it, "
                "or skip the damage with --start / --duration"
            ) from e
        if self.stats.frames == 0:
            raise BadInput(
                f"{info.path}: no frame could be decoded"
                + (" in the --start / --duration window" if self.clip.active else "")
                + ": check the file"
                + (" and the window" if self.clip.active else "")
            )
        if not video_done and self.clip.duration is None:
            self._check_complete(seen_end)

    def _decoded(self, frame: Any, pts: int) -> Decoded:
        info, stats = self.info, self.stats
        if frame.is_corrupt:
            stats.corrupt_frames += 1
        if (frame.width, frame.height) != (info.width, info.height):
            if not stats.resized_frames:
                stats.first_size_change = f"{info.size} -> {frame.width}x{frame.height} at frame {stats.frames}"
            stats.resized_frames += 1
        pixels = frame_to_rgb(frame, info.bit_depth, info.width, info.height)
        stats.frames += 1
        return Decoded(stats.frames - 1, pts, pixels)

    def _side_packet(self, packet: Any, win: _Window, video_done: bool) -> Any:
        """The packet shifted for the output, or None when it is outside the clip (or a flush packet)."""
        if packet.dts is None and packet.pts is None:
            return None
        tb = packet.time_base
        ts = packet.pts if packet.pts is not None else packet.dts
        t = ts * tb
        if win.t0 is not None and t < win.t0:
            return None
        if win.t1 is not None and t >= win.t1:
            win.ends[packet.stream.index] = True
            return None
        if win.shift:
            off = round(win.shift / tb)
            if packet.pts is not None:
                packet.pts -= off
            if packet.dts is not None:
                packet.dts -= off
        self.stats.packets_copied += 1
        return packet

    def _check_complete(self, seen_end: Fraction) -> None:
        """A file that stops well before its declared duration is damaged (FFmpeg reads a cut
        Matroska or mp4 file to its last whole packet without an error)."""
        info = self.info
        if info.duration is None:
            return
        declared = Fraction(info.start + info.duration).limit_denominator(10**6)
        if seen_end + Fraction(TRUNCATION_SLACK_S).limit_denominator(100) < declared:
            got = float(seen_end - Fraction(info.start).limit_denominator(10**6))
            raise BadInput(
                f"{info.path}: the file ends at {got:.2f} s but its header says {info.duration:.2f} s: it is "
                f"truncated or damaged; download it again, or give --duration {max(got - 0.05, 0):.2f} "
                "to upscale the part that is there"
            )


def _packet_end(packet: Any) -> Fraction:
    ts = packet.pts if packet.pts is not None else packet.dts
    if ts is None or packet.time_base is None:
        return Fraction(0)
    return (ts + (packet.duration or 0)) * packet.time_base
