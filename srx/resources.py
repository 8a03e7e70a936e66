"""What this machine can hold: refuse work that cannot fit in memory before it starts.

A typo such as `--input 16384x16384` passes every size check (16K is a legal side) and
then asks for hundreds of GB; the kernel's OOM killer would end srx, or a neighbour, with
no message. `check_memory` turns that into one line before any allocation. Torch-free.
"""

from __future__ import annotations

from pathlib import Path

from srx.errors import BadInput

GB = 1e9


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping: MemAvailable, capped by a
    cgroup v2 limit (containers); None where neither is known (not Linux)."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            room = max(0, int(limit) - used)
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return avail


def check_memory(need: int, what: str, hint: str) -> None:
    """BadInput when `need` bytes exceed what is available (no check where that is unknown)."""
    avail = available_memory()
    if avail is not None and need > avail:
        raise BadInput(
            f"{what} needs about {_size(need)} of memory, more than the {_size(avail)} available here: {hint}"
        )


def _size(n: int) -> str:
    return f"{n / GB:,.1f} GB" if n >= GB / 10 else f"{n / 1e6:,.1f} MB"
