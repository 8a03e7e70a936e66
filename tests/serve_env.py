"""The serving environment for the tests that start a real Triton server (issue 17).

`srx serve` runs in its own virtual environment because nvidia-pytriton requires numpy<2
(README: Serving): `make test` makes `.venv-serve` and names its interpreter in
SRX_SERVE_PYTHON. The test process (this .venv) is the client and computes the in-process
reference; only the server runs there.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

# The platforms nvidia-pytriton publishes wheels for (its tritonserver is a Linux binary).
WHEEL_PLATFORMS = {("Linux", "x86_64"), ("Linux", "aarch64")}


def serve_python() -> Path:
    """The serving environment's interpreter; skip only where the wheel cannot run at all."""
    if (platform.system(), platform.machine()) not in WHEEL_PLATFORMS:
        pytest.skip(f"nvidia-pytriton ships tritonserver for Linux x86-64 and aarch64 only, not {platform.machine()}")
    given = os.environ.get("SRX_SERVE_PYTHON")
    path = Path(given).absolute() if given else REPO / ".venv-serve" / "bin" / "python"
    if not path.is_file():
        pytest.fail(f"no serving environment at {path}: run 'make serve-env' (make test does), or set SRX_SERVE_PYTHON")
    return path


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Server:
    """`srx serve` in its own process group, its output in files (never a full pipe)."""

    def __init__(self, tmp: Path, *args: str, entry: tuple[str, ...] = ("-m", "srx")) -> None:
        self.http, self.grpc, self.metrics = free_ports(3)
        self.out = (tmp / "serve.out").open("w+")
        self.err = (tmp / "serve.err").open("w+")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("SRX_DEBUG", None)
        self.proc = subprocess.Popen(
            [
                str(serve_python()),
                *entry,
                "serve",
                *args,
                "--http-port",
                str(self.http),
                "--grpc-port",
                str(self.grpc),
                "--metrics-port",
                str(self.metrics),
            ],
            stdout=self.out,
            stderr=self.err,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # a signal for the server never reaches pytest
        )

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.http}"

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read()

    def stdout(self) -> str:
        self.out.seek(0)
        return self.out.read()

    def wait_ready(self, models: list[str], timeout: float = 180) -> None:
        import tritonclient.http as http

        deadline = time.monotonic() + timeout
        with contextlib.closing(http.InferenceServerClient(self.url)) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(f"srx serve exited with {self.proc.returncode}:\n{self.stderr()[-3000:]}")
                try:
                    # Triton ready, and srx done starting (PyTriton returns after its own checks).
                    if (
                        client.is_server_ready()
                        and all(client.is_model_ready(m) for m in models)
                        and "Ctrl-C stops the server" in self.stdout()
                    ):
                        return
                except Exception:  # not listening yet
                    pass
                time.sleep(0.5)
        pytest.fail(f"srx serve was not ready after {timeout:.0f} s:\n{self.stderr()[-3000:]}")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 90) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                pytest.fail(f"srx serve did not stop within {timeout:.0f} s of {signal.Signals(sig).name}")
        return self.proc.returncode

    def kill_group(self) -> None:
        """After the tests (or a failed one): stop the server as a user would (SIGINT), and if that
        does not end it, kill everything of it and remove the model folders tritonserver made."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(60)
        below = descendants(self.proc.pid)  # before a kill: orphans are re-parented and lost
        folders = {Path(cmdline(p)[1]).parent.parent for p in below if cmdline(p)[0].endswith("_backend_stub")}
        shm_prefixes, workspaces = set(), set()
        for p in below:
            args = cmdline(p)
            if Path(args[0]).name == "tritonserver" and "--model-repository" in args:
                workspaces.add(Path(args[args.index("--model-repository") + 1]).parent)
                shm_prefixes |= {a.split("=", 1)[1] for a in args if a.startswith("python,shm-region-prefix-name=")}
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for pid in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for folder in folders:
            if folder.parent == Path("/tmp") and folder.name.startswith("folder"):
                shutil.rmtree(folder, ignore_errors=True)
        # A server that was still there had to be killed: remove what PyTriton would have.
        for w in workspaces:
            if w.name.startswith("workspace_"):
                shutil.rmtree(w, ignore_errors=True)
        for seg in Path("/dev/shm").iterdir() if shm_prefixes else []:
            if any(seg.name.startswith(prefix) for prefix in shm_prefixes):
                seg.unlink(missing_ok=True)


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def run_serve_python(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SRX_DEBUG", None)
    return subprocess.run(
        [str(serve_python()), *args], capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL
    )


__all__ = ["Server", "alive", "cmdline", "descendants", "free_ports", "run_serve_python", "serve_python", "sys"]
