"""Benchmark records that hold on any machine: no absolute paths of the one that ran them.

Raw results are committed, so the checkout, the shared data folder, the Python executable
and the temporary folder are written as `.` (the repository), `../shared`, `python` and
`$TMPDIR`. Every script under bench/ writes its JSON, text and log lines through here.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _replacements() -> list[tuple[str, str]]:
    shared = Path(os.environ.get("SRX_SHARED", REPO.parent / "shared")).resolve()
    # Longest first: the executable usually lies inside the checkout, the checkout may lie in /tmp.
    pairs = [
        (sys.executable, "python"),
        (str(shared), "../shared"),
        (str(REPO), "."),
        (tempfile.gettempdir(), "$TMPDIR"),
    ]
    return sorted(((old, new) for old, new in pairs if old not in ("", "/")), key=lambda p: -len(p[0]))


def portable(value: Any) -> Any:
    """`value` (a string, or JSON-like lists and dicts of them) with machine paths replaced."""
    if isinstance(value, str):
        for old, new in _replacements():
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {portable(k): portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    return value


def write_json(path: Path, record: Any) -> None:
    Path(path).write_text(json.dumps(portable(record), indent=2) + "\n")


def write_text(path: Path, text: str) -> None:
    Path(path).write_text(portable(text))


def log(*parts: Any, **kwargs: Any) -> None:
    """print() for lines that may quote a path (stdout is kept as the raw log)."""
    print(*(portable(str(p)) for p in parts), **kwargs)
