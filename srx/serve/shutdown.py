"""Stopping `srx serve` under load (issue 25): drain, stop, and leave nothing behind, ever.

PyTriton's own stop first tells tritonserver to exit while the srx side still has to answer what is
in flight; under load tritonserver then ran out of its exit timeout, exited without unloading its
models (once with Signal 11), and left a Python-backend stub (a process that ignores SIGTERM) and
its shared memory behind. So `srx serve` stops in this order instead:

1. `drain`: unload every model through Triton's repository API. Triton refuses new requests for
   a model that is unloading (the client gets an error at once) and unloads it only when the
   requests it holds, queued ones included, are answered; the stubs exit with it. Done when every
   model is unloaded, or when the grace period (`--grace-period`) or a second signal ends it.
2. PyTriton's stop: tritonserver, with no model left, exits after its short exit timeout.
3. `reap`: whatever ran below this process (recorded while serving, because a process whose
   parent died is re-parented and no longer found below it) and is still there is killed, and the
   shared memory and workspace it used are removed.

A `Watchdog` runs beside steps 1-3: past its deadline it does step 3 and ends the process, so a
stop that hangs (in PyTriton, in tritonserver) cannot leave a server running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from srx.serve.env import alive, cmdline, descendants

SHM = Path("/dev/shm")
SHM_OPTION = "python,shm-region-prefix-name="
# Polling the repository index while draining: short against a grace period, light on Triton.
DRAIN_POLL_S = 0.2


@dataclass
class Leftovers:
    """What a stopped server must not leave: the processes below srx serve, the Python backend's
    shared-memory prefix and PyTriton's workspace (read from tritonserver's command line)."""

    pids: set[int] = field(default_factory=set)
    shm_prefixes: set[str] = field(default_factory=set)
    workspaces: set[Path] = field(default_factory=set)

    def record(self, pid: int) -> None:
        """Add the tritonserver below `pid` and everything below it, now (call it while serving,
        and again before stopping). srx's own other children are not the server's: Python's
        resource tracker, for one, ends only after srx itself."""
        for child in descendants(pid):
            args = cmdline(child)
            if not args or Path(args[0]).name != "tritonserver":
                continue
            self.pids |= {child, *descendants(child)}
            self.shm_prefixes |= {a[len(SHM_OPTION) :] for a in args if a.startswith(SHM_OPTION)}
            if "--model-repository" in args[:-1]:
                repo = Path(args[args.index("--model-repository") + 1])
                if repo.name == "model-store":  # PyTriton's layout: <workspace>/model-store
                    self.workspaces.add(repo.parent)

    def alive(self) -> list[int]:
        return sorted(p for p in self.pids if alive(p))

    def shm_files(self) -> list[Path]:
        if not self.shm_prefixes or not SHM.is_dir():
            return []
        return sorted(p for p in SHM.iterdir() if any(p.name.startswith(x) for x in self.shm_prefixes))


def reap(left: Leftovers, wait_s: float) -> list[str]:
    """Give the recorded processes `wait_s` to end, kill what remains (SIGKILL: a stub ignores
    SIGTERM), remove their shared memory and workspace. Returns what had to be done, for the log."""
    deadline = time.monotonic() + wait_s
    while left.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    done = []
    for pid in left.alive():
        name = Path((cmdline(pid) or ["?"])[0]).name
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            done.append(f"killed {name} (pid {pid})")
    deadline = time.monotonic() + 5
    while left.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    for f in left.shm_files():
        with contextlib.suppress(OSError):
            f.unlink()
            done.append(f"removed {f}")
    for w in left.workspaces:
        if w.exists():
            shutil.rmtree(w, ignore_errors=True)
            done.append(f"removed {w}")
    return done


class Watchdog:
    """Ends the process at `deadline_s` from `start()` unless `cancel()` came first: reaps what the
    server left and exits with code 1, one line on stderr. A daemon thread, so it never keeps the
    process alive itself."""

    def __init__(self, left: Leftovers, deadline_s: float, exit_code: int = 1) -> None:
        self._left = left
        self._deadline_s = deadline_s
        self._exit_code = exit_code
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="srx-serve-watchdog", daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancelled.set()

    def _watch(self) -> None:
        if self._cancelled.wait(self._deadline_s):
            return
        done = reap(self._left, 0)
        sys.stderr.write(
            f"srx: error: the server did not stop within {self._deadline_s:g} s; "
            f"ended it ({'; '.join(done) or 'nothing was left'})\n"
        )
        sys.stderr.flush()
        os._exit(self._exit_code)


def drain(
    unload: Callable[[str], None],
    states: Callable[[], dict[str, str]],
    models: Iterable[str],
    grace_s: float,
    cut_short: threading.Event,
) -> bool:
    """Unload `models` (`unload(name)` asks Triton; each call runs in a thread of its own, because
    Triton may answer it only once the model is unloaded) and wait until `states()` (model name ->
    Triton's state) shows none of them READY or UNLOADING. False when the grace period or a second
    signal (`cut_short`) ended the wait first."""
    names = list(models)
    for name in names:
        threading.Thread(target=_quietly, args=(unload, name), name=f"unload-{name}", daemon=True).start()
    deadline = time.monotonic() + grace_s
    while not cut_short.is_set():
        try:
            current = states()
        except Exception:  # tritonserver gone: nothing left to drain there
            return False
        if all(current.get(n) not in ("READY", "UNLOADING") for n in names):
            return True
        if time.monotonic() >= deadline:
            return False
        cut_short.wait(DRAIN_POLL_S)
    return False


def _quietly(fn: Callable[[str], None], arg: str) -> None:
    with contextlib.suppress(Exception):  # the states say whether it worked
        fn(arg)
