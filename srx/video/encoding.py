"""How an upscaled video is written: container, encoder, quality, pixel format, colours, streams.

Defaults (docs/video.md):
* container: from the output suffix (.mp4, .mkv, .webm, .mov); a folder keeps each input's
  suffix where srx writes it, else .mkv;
* encoder: the input's codec where srx knows a good encoder for it and the container takes
  it (H.264 -> libx264, HEVC -> libx265, VP9 -> libvpx-vp9, AV1 -> SVT-AV1, FFV1 -> FFV1,
  ProRes -> prores_ks); otherwise H.264 (VP9 in .webm, which only holds VP8/VP9/AV1);
* quality: constant quality (`--crf`), defaults that keep the detail the model adds
  (x264 18, x265 20, VP9 24, SVT-AV1 30, NVENC cq 19); lossless encoders take no --crf;
* pixel format and colours: the input's (range, matrix, primaries, transfer), so 4:2:0 stays
  4:2:0 and 10-bit stays 10-bit where the encoder can; alpha is not kept (the models are
  trained on colour only);
* audio and subtitle streams are copied unchanged; a stream the output container cannot hold
  is refused before any work (write .mkv, which holds them all); data streams are left out.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from srx.errors import BadInput
from srx.video import OUTPUT_FORMATS
from srx.video.avlib import require_av
from srx.video.probe import VideoInfo

# Input codec -> the encoder srx keeps it with.
KEEP_CODEC = {
    "h264": "libx264",
    "hevc": "libx265",
    "vp9": "libvpx-vp9",
    "av1": "libsvtav1",
    "ffv1": "ffv1",
    "prores": "prores_ks",
}
# Encoder -> (quality option, default, lowest, highest, fixed options). x265 and SVT-AV1
# print to stderr themselves unless told not to; libvpx needs b=0 for constant quality.
QUALITY: dict[str, tuple[str, int, int, int, dict[str, str]]] = {
    "libx264": ("crf", 18, 0, 51, {}),
    "libx265": ("crf", 20, 0, 51, {"x265-params": "log-level=error"}),
    "libvpx-vp9": ("crf", 24, 0, 63, {"b": "0", "row-mt": "1"}),
    "libvpx": ("crf", 10, 4, 63, {"b": "10M"}),
    "libsvtav1": ("crf", 30, 1, 63, {}),
    "h264_nvenc": ("cq", 19, 0, 51, {"rc": "vbr", "b": "0"}),
    "hevc_nvenc": ("cq", 21, 0, 51, {"rc": "vbr", "b": "0"}),
    "av1_nvenc": ("cq", 28, 0, 63, {"rc": "vbr", "b": "0"}),
}
ALPHA_FREE = {"yuva420p": "yuv420p", "yuva422p": "yuv422p", "yuva444p": "yuv444p", "gbrap": "gbrp", "bgra": "bgr0"}


@dataclass(frozen=True)
class Encoding:
    container: str  # FFmpeg muxer: mp4, matroska, webm, mov
    encoder: str  # libx264, ...
    codec: str  # h264, ...
    pix_fmt: str
    options: dict[str, str]
    quality: str  # 'crf 18', 'lossless', 'encoder default'
    width: int  # output frame size (the model's scale, cut to even sides where the pixel format needs it)
    height: int
    copy_streams: tuple[int, ...]  # input stream indices copied unchanged
    notes: tuple[str, ...] = field(default=())  # what the user should know (printed as warnings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "encoder": self.encoder,
            "codec": self.codec,
            "pix_fmt": self.pix_fmt,
            "quality": self.quality,
            "options": dict(self.options),
            "size": f"{self.width}x{self.height}",
            "copied_streams": list(self.copy_streams),
        }


def container_for(suffix: str) -> str:
    fmt = OUTPUT_FORMATS.get(suffix.lower())
    if fmt is None:
        raise BadInput(
            f"srx cannot write {suffix or 'files without a suffix'} videos: name the output .mp4, .mkv, .webm or .mov"
        )
    return fmt


def supported_codecs(container: str) -> set[str]:
    """Codec names the muxer accepts (asked of FFmpeg on an in-memory output: no file made)."""
    av = require_av()
    with av.open(io.BytesIO(), "w", format=container) as out:
        return set(out.supported_codecs)


def _encoder(name: str) -> Any:
    av = require_av()
    try:
        codec = av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError) as e:
        raise BadInput(
            f"--codec {name}: this FFmpeg build has no such encoder: use h264, hevc, vp9, av1 or ffv1 "
            "(or an encoder name such as libx264 or h264_nvenc)"
        ) from e
    if codec.type != "video":
        raise BadInput(f"--codec {name} is a {codec.type} encoder: give a video codec such as h264")
    return codec


# Encoders with an option named "preset" (speed against compression), and its values. Checked
# here: x264 and x265 print a wrong name to stderr themselves before FFmpeg's log sees it.
X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
NVENC_PRESETS = ("p1", "p2", "p3", "p4", "p5", "p6", "p7")
PRESETS = {
    "libx264": X26X_PRESETS,
    "libx265": X26X_PRESETS,
    "libsvtav1": tuple(str(i) for i in range(14)),
    "h264_nvenc": NVENC_PRESETS,
    "hevc_nvenc": NVENC_PRESETS,
    "av1_nvenc": NVENC_PRESETS,
}


def choose_encoding(
    info: VideoInfo,
    out_suffix: str,
    scale: int,
    *,
    codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
) -> Encoding:
    """Everything the writer needs, decided (and refused if impossible) before any work."""
    container = container_for(out_suffix)
    accepted = supported_codecs(container)
    notes: list[str] = []
    if codec is not None:
        enc = _encoder(codec)
        if enc.canonical_name not in accepted:
            raise BadInput(
                f"--codec {codec}: {container_label(container)} cannot hold {enc.canonical_name} video: "
                "choose another --codec or write .mkv"
            )
    else:
        enc = _default_encoder(info.codec, container, accepted)
    pix_fmt = _pix_fmt(enc, info, notes)
    options, quality = _quality(enc.name, crf)
    if preset is not None:
        if enc.name not in PRESETS:
            raise BadInput(f"--preset does not apply to {enc.name}: drop it, or choose libx264, libx265 or libsvtav1")
        if preset not in PRESETS[enc.name]:
            raise BadInput(f"--preset {preset}: {enc.name} has {', '.join(PRESETS[enc.name])} (faster to slower)")
        options["preset"] = preset
        quality += f", preset {preset}"
    width, height = info.width * scale, info.height * scale
    even_w, even_h = _needs_even(pix_fmt)
    if (even_w and width % 2) or (even_h and height % 2):
        notes.append(
            f"{pix_fmt} needs even sides: the {width}x{height} output is cut to "
            f"{width - width % 2 if even_w else width}x{height - height % 2 if even_h else height} "
            "(one pixel off the right / bottom edge)"
        )
        width -= width % 2 if even_w else 0
        height -= height % 2 if even_h else 0
    copy = _copied_streams(info, container, accepted, notes)
    return Encoding(
        container, enc.name, enc.canonical_name, pix_fmt, options, quality, width, height, copy, tuple(notes)
    )


def container_label(container: str) -> str:
    return {"matroska": ".mkv", "mp4": ".mp4", "webm": ".webm", "mov": ".mov"}.get(container, container)


def _default_encoder(input_codec: str, container: str, accepted: set[str]) -> Any:
    av = require_av()
    candidates = [KEEP_CODEC[input_codec]] if input_codec in KEEP_CODEC else []
    candidates += ["libvpx-vp9"] if container == "webm" else ["libx264"]
    for name in candidates:
        try:
            enc = av.codec.Codec(name, "w")
        except Exception:  # an FFmpeg build without that encoder
            continue
        if enc.canonical_name in accepted:
            return enc
    raise BadInput(
        f"this FFmpeg build has no encoder for {container_label(container)} output "
        f"(tried {', '.join(candidates)}): install PyAV's wheels (pip install 'srx[video]') or choose --codec"
    )


def _pix_fmt(enc: Any, info: VideoInfo, notes: list[str]) -> str:
    formats = [f.name for f in (enc.video_formats or [])]
    want = ALPHA_FREE.get(info.pix_fmt, info.pix_fmt)
    if info.has_alpha:
        notes.append(f"the input's alpha channel ({info.pix_fmt}) is not kept: the output is opaque")
    if not formats or want in formats:
        return want
    order = ["yuv420p10le", "yuv420p"] if info.bit_depth > 8 else ["yuv420p"]
    if want in ("bgr0", "gbrp", "rgb24") or want.startswith("yuv444"):
        order = ["yuv444p10le" if info.bit_depth > 8 else "yuv444p", *order]
    chosen = next((f for f in order if f in formats), formats[0])
    notes.append(f"{enc.name} cannot write {want}: the output is {chosen}")
    return chosen


def _needs_even(pix_fmt: str) -> tuple[bool, bool]:
    """Whether a pixel format's chroma is subsampled horizontally / vertically (odd sides impossible)."""
    av = require_av()
    fmt = av.VideoFormat(pix_fmt, 4, 4)
    chroma = [c for c in fmt.components if c.is_chroma]
    return any(c.width < 4 for c in chroma), any(c.height < 4 for c in chroma)


def _quality(encoder: str, crf: int | None) -> tuple[dict[str, str], str]:
    if encoder not in QUALITY:
        if crf is not None:
            raise BadInput(
                f"--crf does not apply to {encoder} (lossless or without a constant-quality mode): drop --crf"
            )
        return {}, "lossless" if encoder == "ffv1" else "encoder default"
    option, default, lo, hi, fixed = QUALITY[encoder]
    value = default if crf is None else crf
    if not lo <= value <= hi:
        raise BadInput(f"--crf {value} is outside {encoder}'s range {lo}..{hi} (lower is better quality)")
    return {option: str(value), **fixed}, f"{option} {value}"


def _copied_streams(info: VideoInfo, container: str, accepted: set[str], notes: list[str]) -> tuple[int, ...]:
    copy = []
    for s in info.side:
        if s.kind in ("audio", "subtitle"):
            if s.codec not in accepted:
                raise BadInput(
                    f"{info.path}: its {s.kind} stream #{s.index} ({s.codec}) cannot be copied into "
                    f"{container_label(container)}: write .mkv, which holds it unchanged"
                )
            copy.append(s.index)
        elif s.kind == "attachment" and container == "matroska":
            copy.append(s.index)
        else:
            notes.append(f"{s.kind} stream #{s.index} ({s.codec}) is not copied (srx copies audio and subtitles)")
    return tuple(copy)
