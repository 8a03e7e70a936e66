"""Encoding and muxing: upscaled frames and copied packets -> the output file.

The writer writes to the temporary file it is given (srx.fileio.atomic_path: a hidden
name in the destination folder, renamed when complete), so the container is named
explicitly instead of being guessed from the file name. The header is written before the
pipeline starts, so packets of the copied streams can be muxed as soon as they are read.

Two threads use one writer: the reader's thread muxes copied packets, the encoder's thread
encodes frames; every mux goes through one lock (FFmpeg's muxer is not thread-safe) and
FFmpeg's interleaving queue orders them by time. The encoder is given the input video's
time base, so every frame keeps its timestamp exactly; the muxer may pick its own time base
for the file (mp4: a multiple of it) and PyAV rescales the packets.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from srx.errors import BadInput
from srx.video.avlib import ffmpeg_message, require_av
from srx.video.encoding import Encoding
from srx.video.frames import encode_flags
from srx.video.probe import ColorTags, VideoInfo

# AVColorSpace (the file's tag) -> SWS_CS_* (swscale's matrix), for the RGB -> YUV conversion.
SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
RANGE_NAMES = {1: "MPEG", 2: "JPEG"}
NOT_COPIED_TAGS = ("duration", "encoder", "_statistics")  # describe the input's encoding, not the output's


def _copy_tags(src: Any, dst: Any) -> None:
    for key, value in dict(src).items():
        if not any(key.lower().startswith(t) or key.lower().endswith(t) for t in NOT_COPIED_TAGS):
            dst[key] = value


class VideoWriter:
    def __init__(self, path: Path, encoding: Encoding, info: VideoInfo, shown: str | None = None) -> None:
        self.path = path
        self.shown = shown or str(path)  # the name the user gave (not the temporary one)
        self.enc = encoding
        self.info = info
        self.lock = threading.Lock()
        self.out: Any = None
        self.stream: Any = None
        self.map: dict[int, Any] = {}
        self.frames = 0

    def open(self, reader: Any) -> None:
        """Create the file with the video stream and the copied streams (templates from
        `reader`'s container) and write its header."""
        av = require_av()
        enc, info = self.enc, self.info
        if enc.encoder == "libsvtav1":
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr otherwise
        try:
            self.out = av.open(str(self.path), "w", format=enc.container)
            rate = {"rate": info.rate} if info.rate else {}
            vs = self.out.add_stream(enc.encoder, **rate)
            vs.width, vs.height, vs.pix_fmt = enc.width, enc.height, enc.pix_fmt
            cc = vs.codec_context
            cc.time_base = info.time_base
            vs.time_base = info.time_base  # what the muxer starts from; mp4 may refine it
            _tag_context(cc, info.color)
            if info.display_matrix is not None:
                vs.set_display_matrix(info.display_matrix)
            vs.options = dict(enc.options)
            _copy_tags(reader.container.metadata, self.out.metadata)
            for index in enc.copy_streams:
                src = reader.stream(index)
                dst = self.out.add_stream_from_template(src)
                _copy_tags(src.metadata, dst.metadata)
                dst.disposition = src.disposition
                self.map[index] = dst
            self.stream = vs
            self.out.start_encoding()
        except av.error.FFmpegError as e:
            raise BadInput(
                f"cannot start writing {self.shown} with {enc.encoder} ({enc.pix_fmt}, {enc.width}x{enc.height}): "
                f"{ffmpeg_message(e)}; check --codec, --crf and --preset"
            ) from e

    def mux_copy(self, packet: Any) -> None:
        """Write a packet of a copied stream unchanged (from the reader's thread)."""
        packet.stream = self.map[packet.stream.index]
        with self.lock:
            self.out.mux(packet)

    def encode(self, frame: Any, pts: int) -> None:
        """Convert an upscaled RGB frame to the output pixel format and colours, and encode it."""
        c = self.info.color
        yuv = frame.reformat(
            format=self.enc.pix_fmt,
            dst_colorspace=SWS_MATRIX.get(c.space),
            dst_color_range=RANGE_NAMES.get(c.range),
            interpolation=encode_flags(),
        )
        _tag_frame(yuv, c)
        yuv.pts = pts
        yuv.time_base = self.info.time_base
        packets = self.stream.encode(yuv)
        self.frames += 1
        if packets:
            with self.lock:
                self.out.mux(packets)

    def finish(self) -> None:
        """Flush the encoder and write the trailer."""
        packets = self.stream.encode(None)
        with self.lock:
            self.out.mux(packets)
            self.out.close()
        self.out = None

    def abort(self) -> None:
        """Close after a failure (the caller removes the temporary file)."""
        if self.out is None:
            return
        with contextlib.suppress(Exception):  # a half-written file is removed anyway; its trailer does not matter
            self.out.close()
        self.out = None


def _tag_context(cc: Any, c: ColorTags) -> None:
    cc.color_range, cc.colorspace, cc.color_primaries, cc.color_trc = c.range, c.space, c.primaries, c.trc


def _tag_frame(frame: Any, c: ColorTags) -> None:
    frame.color_range, frame.colorspace = c.range, c.space
    frame.color_primaries, frame.color_trc = c.primaries, c.trc
