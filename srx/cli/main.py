"""`srx`'s entry point: run the click group and turn every failure into one line.

Every failure ends as one line on stderr (`srx: error: ...`) with exit code 2 for bad
input, 1 for failed work; `--debug` shows the traceback. Heavy imports happen inside
commands so `srx --help` needs none of torch, onnx, TensorRT or Triton.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import traceback

import click

from srx.cli.group import cli
from srx.errors import MissingDependency, SrxError, first_line
from srx.interrupt import Interrupted, raise_interrupted


def debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("SRX_DEBUG", "") not in ("", "0")


def _command_name(args: list[str]) -> str:
    """'srx eval' for the command on the line, for messages that name it."""
    return " ".join(["srx", *[a for a in args if a in cli.commands][:1]])


def _fail(message: str, code: int) -> None:
    one_line = " ".join(message.split())  # a message that quotes a library's text may hold newlines
    click.echo(f"srx: error: {one_line}", err=True)
    sys.exit(code)


# errno values that mean the disk (or a quota, or a file-size limit) is full, not that srx failed.
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _drop_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's flush at exit cannot fail a second time
    (it would print 'Exception ignored ... OSError' and exit 120)."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _unexpected(e: Exception, debug: bool) -> None:
    """Last line of defence: a failure no srx check anticipated, still as one line."""
    if debug:
        traceback.print_exc()
    first = first_line(str(e), 200)
    if isinstance(e, OSError) and e.errno in FULL:
        _drop_stdout()
        where = e.filename or "the output (standard output?)"
        _fail(f"cannot write {where}: {e.strerror}; free some space or write elsewhere", 2)
    if isinstance(e, MemoryError) or "out of memory" in first.lower() or "can't allocate memory" in first:
        _fail(
            f"ran out of memory ({type(e).__name__}: {first}): use a smaller --input or --tile, "
            "or close other programs",
            1,
        )
    _fail(f"internal error: {type(e).__name__}: {first} (run again with --debug for the traceback)", 1)


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
        _exit_for(e, debug, _command_name(args))


def _exit_for(e: BaseException, debug: bool, command: str) -> None:
    """The one line and exit code for `e`, raised out of the command `command` ('srx eval')."""
    if isinstance(e, click.exceptions.Exit):
        sys.exit(e.exit_code)
    if isinstance(e, click.exceptions.Abort):
        _fail("interrupted", 130)
    if isinstance(e, click.exceptions.NoArgsIsHelpError):
        _fail(f"no command given: choose one of {', '.join(sorted(cli.commands))} (see 'srx --help')", 2)
    if isinstance(e, click.UsageError):
        if debug:
            traceback.print_exc()
        cmd = e.ctx.command_path if e.ctx else "srx"
        _fail(f"{e.format_message()} (see '{cmd} --help')", 2)
    if isinstance(e, click.ClickException):
        _fail(e.format_message(), e.exit_code)
    if isinstance(e, SrxError):
        if debug:
            traceback.print_exc()
        _fail(str(e), e.exit_code)
    if isinstance(e, Interrupted):
        _fail(f"interrupted by {signal.Signals(e.signum).name}; no partial output was left", 128 + e.signum)
    if isinstance(e, KeyboardInterrupt):
        _fail("interrupted; no partial output was left", 130)
    if isinstance(e, BrokenPipeError):
        _drop_stdout()
        sys.exit(1)
    _environment_or_unexpected(e, debug, command)


def _environment_or_unexpected(e: BaseException, debug: bool, command: str) -> None:
    if isinstance(e, ModuleNotFoundError):
        # An optional package the command imports lazily (torch for checkpoints, onnxruntime,
        # TensorRT, ...): the user's install, not an srx bug.
        missing = MissingDependency.from_import_error(e, f"'{command}'")
        if missing is not None:
            if debug:
                traceback.print_exc()
            _fail(str(missing), missing.exit_code)
    elif isinstance(e, PermissionError):
        # A file or folder the user pointed at (or its parent) that srx may not read or
        # write: their environment, not an srx bug. The specific checks give better words.
        if debug:
            traceback.print_exc()
        _fail(f"cannot access {e.filename or 'a file'} ({e.strerror or e}): check its permissions", 2)
    _unexpected(e, debug)  # type: ignore[arg-type]
