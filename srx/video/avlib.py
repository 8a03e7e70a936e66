"""PyAV, imported on demand, and FFmpeg's errors as one line.

PyAV is an extra (`pip install 'srx[video]'`): the base install and `srx --help` never
import it. Every video module gets it from `require_av`, which names the extra to install.
"""

from __future__ import annotations

from typing import Any

from srx.errors import MissingDependency


def require_av(purpose: str = "'srx upscale' of a video") -> Any:
    """The `av` module, or MissingDependency (exit 2) saying how to install it."""
    try:
        import av
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "av":
            raise
        raise MissingDependency("av", "video", purpose) from e
    return av


def ffmpeg_message(e: BaseException) -> str:
    """FFmpeg's reason in a few words: PyAV's messages repeat the file name and errno, and
    append FFmpeg's last log line, which is the useful part when there is one."""
    text = " ".join(str(e).split())
    if "last error log:" in text:
        text = text.split("last error log:", 1)[1].strip()
        # '[h264 @ 0x55d...] no frame!' -> 'h264: no frame!'
        if text.startswith("[") and "]" in text:
            head, rest = text[1:].split("]", 1)
            text = f"{head.split(' @ ')[0]}: {rest.strip()}"
    else:
        strerror = getattr(e, "strerror", None)
        if strerror:
            text = str(strerror)
    return text[:200] or type(e).__name__
