"""Ctrl-C and `kill` as an exception, also through C++ libraries that call back into Python.

`srx.cli.main` installs `raise_interrupted` for SIGINT and SIGTERM: the signal becomes
`Interrupted` (a KeyboardInterrupt), which unwinds through the atomic writers, so no
partial file is left, and ends as one line with exit code 128 + signal.

A C++ library that calls back into Python catches exceptions raised in its callbacks and
carries on: TensorRT's builder, running srx's logger during an engine build, printed
"Exception caught in log(): Interrupted: SIGINT", finished the build and srx wrote the
engine and exited 0. Around such calls `deferred_interrupts` only records the signal, lets
a callback ask whether to stop (the build's progress monitor cancels the build), and
raises `Interrupted` once the library has returned.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: unwinds like Ctrl-C so atomic writers remove their temp files."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_interrupted(signum: int, _frame: Any) -> None:
    raise Interrupted(signum)


@dataclass
class Deferred:
    signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[Deferred]:
    """Record SIGINT / SIGTERM instead of raising inside the block; raise `Interrupted` after it.

    Only where srx's own handler is installed (the CLI) and on the main thread; elsewhere
    the caller's handlers are left alone and the block runs as it is.
    """
    state = Deferred()
    if threading.current_thread() is not threading.main_thread() or any(
        signal.getsignal(s) is not raise_interrupted for s in SIGNALS
    ):
        yield state
        return

    def record(signum: int, _frame: Any) -> None:
        if state.signum is None:
            state.signum = signum

    for s in SIGNALS:
        signal.signal(s, record)
    try:
        yield state
    finally:
        for s in SIGNALS:
            signal.signal(s, raise_interrupted)
        if state.signum is not None:
            raise Interrupted(state.signum)
