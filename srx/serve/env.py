"""What the Triton server process needs from this machine: a matching libpython, free ports.

PyTriton starts tritonserver, whose Python backend runs each model instance in a "stub" process
that embeds Python. PyTriton ships one stub per Python minor version; the stub links
`libpython3.X.so.1.0` by name only (its RPATH holds PyTriton's own libraries), so the dynamic
loader takes the first libpython3.X it finds. Under a pyenv or conda Python that is the
system's library (Debian's 3.11.2 under pyenv's 3.11.7 here), while the stub's `sys.path` is this
interpreter's standard library: C modules and Python code of two patch levels meet, and loading a
model fails with "'_thread.RLock' object has no attribute '_recursion_count'" (issue 17). Putting
this interpreter's own shared library first on LD_LIBRARY_PATH makes the two match; Debian's
python3 worked only because its library is the one the loader finds anyway.

`descendants` lists the processes below srx serve (tritonserver, its stubs and their helpers),
which srx.serve.shutdown records so that none outlives a stop. (Models loaded through Triton's
repository API went to /tmp/folderXXXXXX, which a tritonserver past its exit timeout left behind;
since issue 25 they load from PyTriton's model store, which srx removes with the workspace.)
"""

from __future__ import annotations

import errno
import os
import socket
import sysconfig
from pathlib import Path

from srx.errors import BadInput


def libpython_dir() -> Path | None:
    """The folder of this interpreter's shared libpython, or None for a statically linked Python."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return None
    libdir = sysconfig.get_config_var("LIBDIR")
    soname = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
    if not libdir or not soname or not (Path(libdir) / soname).is_file():
        return None
    return Path(libdir)


def stub_library_path(current: str | None) -> tuple[str | None, str]:
    """(LD_LIBRARY_PATH for tritonserver and its Python stubs, a warning or '').

    None keeps the variable as it is."""
    libdir = libpython_dir()
    if libdir is None:
        return current, (
            "this Python is linked statically, so PyTriton's Python-backend stub loads whatever "
            "libpython of the same minor version the system has; if models fail to load, run srx serve "
            "under a Python built with --enable-shared (pyenv, conda and Debian's python3 are)"
        )
    parts = [p for p in (current or "").split(os.pathsep) if p]
    if parts[:1] == [str(libdir)]:
        return current, ""
    return os.pathsep.join([str(libdir), *[p for p in parts if p != str(libdir)]]), ""


def check_port_free(host: str, port: int, option: str) -> None:
    """BadInput when `port` cannot be listened on at `host`; tritonserver would otherwise fail
    with its own log lines after a long start."""
    if not 0 < port < 65536:
        raise BadInput(f"{option} {port}: give a TCP port between 1 and 65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise BadInput(f"--host {host}: not an address of this machine ({e.strerror}); use 127.0.0.1 or 0.0.0.0") from e
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # As servers do, so a port left in TIME_WAIT by a server that just stopped counts as free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(infos[0][4])
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise BadInput(
                    f"{option} {port}: the port is in use on {host}; choose another {option} or stop what uses it"
                ) from e
            if e.errno == errno.EADDRNOTAVAIL:
                raise BadInput(f"--host {host}: not an address of this machine; use 127.0.0.1 or 0.0.0.0") from e
            if e.errno == errno.EACCES:
                raise BadInput(f"{option} {port}: not allowed to listen on it here; choose a port above 1023") from e
            raise


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (for tritonserver's private HTTP port behind srx.serve.gate)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue  # ended meanwhile
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d.name))
    return children


def descendants(pid: int) -> set[int]:
    """Every process below `pid` now (from /proc; empty where there is none)."""
    children = _children() if Path("/proc").is_dir() else {}
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> list[str]:
    """`pid`'s command line ([] when it is gone or has none)."""
    try:
        return [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0") if a]
    except OSError:
        return []
