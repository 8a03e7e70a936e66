"""`srx`'s entry point: run the click group; srx.program turns every failure into one line.

Heavy imports happen inside commands so `srx --help` needs none of torch, onnx, TensorRT
or Triton.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from typing import NoReturn

from srx.cli.group import cli
from srx.errors import MissingDependency
from srx.interrupt import raise_interrupted
from srx.program import debug_requested, exit_for, fail, internal_error


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the click group and turn every failure into one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(args)
    # --debug works anywhere on the line (`srx upscale ... --debug`), not only before the command.
    args = [a for a in args if a != "--debug"]
    # Before torch loads OpenMP (every command imports it lazily, after this): with OpenMP's
    # default spin-waiting, PyTorch on a CPU shared with other work ran 3-4x slower
    # (docs/bench.md; the export's verification took 5.8 s instead of 1.8 s at load 6 on 2
    # cores), which would also flatter every other backend in srx bench. A user's setting
    # wins (bench records it).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    signal.signal(signal.SIGTERM, raise_interrupted)
    signal.signal(signal.SIGINT, raise_interrupted)
    try:
        # Not cli.main(): it turns KeyboardInterrupt (so also our SIGTERM) into click's Abort,
        # which loses the signal, prints a blank line and bypasses the handlers below.
        with cli.make_context("srx", args) as ctx:
            cli.invoke(ctx)
        sys.stdout.flush()  # a full disk or a closed pipe on stdout shows here, not at exit
    except (Exception, KeyboardInterrupt) as e:
        command = " ".join(["srx", *[a for a in args if a in cli.commands][:1]])  # 'srx eval', for messages

        def environment(e: BaseException, debug: bool) -> NoReturn:
            _environment_or_internal(e, debug, command)

        exit_for(e, debug, otherwise=environment)


def _environment_or_internal(e: BaseException, debug: bool, command: str) -> NoReturn:
    """A missing optional package or a file srx may not access: the user's install or
    environment, not an srx bug; else an internal error."""
    if isinstance(e, ModuleNotFoundError):
        # An optional package the command imports lazily (torch for checkpoints, onnxruntime, TensorRT, ...).
        missing = MissingDependency.from_import_error(e, f"'{command}'")
        if missing is not None:
            if debug:
                traceback.print_exc()
            fail(str(missing), missing.exit_code)
    elif isinstance(e, PermissionError):
        # The specific checks give better words; this is for the paths they did not foresee.
        if debug:
            traceback.print_exc()
        fail(f"cannot access {e.filename or 'a file'} ({e.strerror or e}): check its permissions", 2)
    internal_error(e, debug)
