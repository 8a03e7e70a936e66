"""Atomic output files: nothing half-written is ever left at the destination."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from srx.errors import BadInput


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Fail early, before any long work, if `path` cannot be created."""
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise BadInput(f"output path {out} is a directory: give a file name")
    if out.exists() and not out.is_file():
        # A device, FIFO or socket (e.g. /dev/full): replacing it by rename would be wrong.
        raise BadInput(f"output path {out} exists and is not a regular file: choose another -o")
    if not parent.exists():
        hint = "it is a file" if _has_file_ancestor(parent) else "it does not exist"
        raise BadInput(
            f"cannot write {out}: its folder {parent} is not a folder ({hint}); create it or choose another -o"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(f"cannot write {out}: no permission to write in {parent}; choose another -o")
    return out


def _has_file_ancestor(path: Path) -> bool:
    return any(p.is_file() for p in [path, *path.parents])


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it into place only if the block succeeds.

    The temporary file lives in the destination folder so the final `os.replace` is a
    rename on one file system. On any exception, KeyboardInterrupt included, it is removed.
    """
    out = check_writable(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent or ".")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the mode a plain open() would have.
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _new_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        _write_or_explain(tmp, path, lambda f: f.write(data))
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _write_or_explain(tmp: Path, dest: str | os.PathLike[str], write: Any) -> None:
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise BadInput(f"cannot write {dest}: {e.strerror or e}; free some space or choose another -o") from e


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
