"""Image sizes as users write them: WIDTHxHEIGHT (CLI.md), e.g. 320x180."""

from __future__ import annotations

import re
from typing import NamedTuple

from srx.errors import BadInput

# Far beyond any display (16K is 15360x8640) yet small enough that a typo such as
# 3200000x180 is refused before it allocates gigabytes.
MAX_SIDE = 16384

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


class Size(NamedTuple):
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


def parse_size(text: str, *, what: str = "size") -> Size:
    """Parse 'WxH'. Raises BadInput with the expected form on anything else."""
    m = _SIZE.match(text or "")
    if not m:
        raise BadInput(f"{what} {text!r} is not WIDTHxHEIGHT: write it like 320x180")
    w, h = int(m.group(1)), int(m.group(2))
    if w <= 0 or h <= 0:
        raise BadInput(f"{what} {text!r} has a zero side: give a width and height of at least 1, like 320x180")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise BadInput(f"{what} {text!r} is larger than {MAX_SIDE} pixels on a side: use tiling for huge images")
    return Size(w, h)
