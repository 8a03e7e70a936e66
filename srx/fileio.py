"""Atomic output files: nothing half-written is ever left at the destination."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from srx.errors import BadInput


def check_writable(path: str | os.PathLike[str], option: str = "-o") -> Path:
    """Fail early, before any long work, if `path` cannot be created. `option` names the flag
    the path came from, so the message says which one to change."""
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if out.is_dir():
        raise BadInput(f"output path {out} is a directory: give a file name to {option}")
    if out.exists() and not out.is_file():
        # A device, FIFO or socket (e.g. /dev/full): replacing it by rename would be wrong.
        raise BadInput(f"output path {out} exists and is not a regular file: choose another {option}")
    if not parent.is_dir():
        blocker = _file_ancestor(parent)
        if blocker is not None:
            raise BadInput(f"cannot write {out}: {blocker} is a file, not a folder; choose another {option}")
        raise BadInput(f"cannot write {out}: its folder {parent} does not exist; create it or choose another {option}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(f"cannot write {out}: no permission to write in {parent}; choose another {option}")
    return out


def _file_ancestor(path: Path) -> Path | None:
    """The regular file that stands where a folder of `path` should be, if any."""
    return next((p for p in [path, *path.parents] if p.is_file()), None)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it into place only if the block succeeds.

    The temporary file lives in the destination folder so the final `os.replace` is a
    rename on one file system. On any exception, KeyboardInterrupt included, it is removed.
    """
    out = check_writable(path)
    # The name is bound before the file exists and the file is created inside the `try`, so
    # an interrupt at any moment after creation still removes it (with mkstemp there is a
    # window where the file exists but its name is not yet known to this function).
    tmp: Path | None = None
    try:
        while True:
            tmp = out.parent / f".{out.name}.{secrets.token_hex(6)}.part"
            try:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
                break
            except FileExistsError:  # someone else's temp file: never touch it, pick another name
                continue
            except OSError as e:  # read-only file system, no space for a new file, ...
                tmp = None
                raise BadInput(f"cannot write {out}: {e.strerror or e}; free some space or choose another -o") from e
        yield tmp
        # The file was created 0600; give it the mode a plain open() would have.
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, out)
    except BaseException:
        if tmp is not None:
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
