"""Image sizes as users write them: WIDTHxHEIGHT (docs/cli.md#conventions), e.g. 320x180."""

from __future__ import annotations

import re
from typing import NamedTuple

from srx.errors import BadInput

# Far beyond any display (16K is 15360x8640) yet small enough that a typo such as
# 3200000x180 is refused before it allocates gigabytes.
MAX_SIDE = 16384

_SIZE = re.compile(r"^\s*([0-9]+)\s*[xX×]\s*([0-9]+)\s*$")  # ASCII digits only


class Size(NamedTuple):
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


def parse_size(text: str, *, what: str = "size") -> Size:
    """Parse 'WxH'. Raises BadInput with the expected form on anything else."""
    shown = repr(text if len(text or "") <= 40 else text[:37] + "...")
    m = _SIZE.match(text or "")
    if not m:
        raise BadInput(f"{what} {shown} is not WIDTHxHEIGHT: write it like 320x180")
    # int() of thousands of digits raises ValueError (and is slow): the length decides first.
    if max(len(m.group(1).lstrip("0")), len(m.group(2).lstrip("0"))) > len(str(MAX_SIDE)):
        raise BadInput(f"{what} {shown} is larger than {MAX_SIDE} pixels on a side: use tiling for huge images")
    w, h = int(m.group(1)), int(m.group(2))
    if w <= 0 or h <= 0:
        raise BadInput(f"{what} {shown} has a zero side: give a width and height of at least 1, like 320x180")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise BadInput(f"{what} {shown} is larger than {MAX_SIDE} pixels on a side: use tiling for huge images")
    return Size(w, h)
