"""Progress of long work, for a person watching: bars with counts and ETA, and stage notes.

One place decides whether anything is shown: only when stderr is a terminal, and never
with --quiet or --json - (a pipe or a log file must hold only the results and, on a
failure, the one error line). Library code takes a `Progress` and calls `bar` and
`note`; `Progress.off()` (the default everywhere) shows nothing. tqdm is imported only
when a bar is shown.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Protocol

# A terminal that reports no size (some pseudo-terminals, `script`) has 0 rows and columns,
# and tqdm then draws nothing at all: such a terminal gets this many columns and lines.
FALLBACK_SIZE = (100, 24)


class Bar(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def close(self) -> Any: ...


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Progress:
    """`bar(what, total, unit)`: a counter with rate and ETA (total None: a count only);
    `note(text)`: one line about a stage that has no count. Both go to stderr."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    @classmethod
    def off(cls) -> Progress:
        return cls(False)

    @classmethod
    def for_terminal(cls, *, quiet: bool = False, json_path: str | None = None) -> Progress:
        """Shown on a terminal unless --quiet, or --json - puts the results on stdout."""
        return cls(not quiet and json_path != "-" and sys.stderr.isatty())

    def bar(self, what: str, total: int | None = None, unit: str = "it") -> Any:
        if not self.enabled:
            return _NoBar()
        from tqdm import tqdm

        size = _terminal_size()
        return tqdm(
            total=total,
            desc=what,
            unit=unit,
            file=sys.stderr,
            leave=False,
            dynamic_ncols=size is not None,
            ncols=None if size else FALLBACK_SIZE[0],
            nrows=None if size else FALLBACK_SIZE[1],
        )

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        tqdm.write(f"srx: {text}", file=sys.stderr)  # above any bar that is showing


def _terminal_size() -> tuple[int, int] | None:
    """The terminal's (columns, lines), or None when it reports no size."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):
        return None
    return (size.columns, size.lines) if size.columns and size.lines else None
