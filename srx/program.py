"""Running a click command as a program: every failure as one line, and the output rules.

Shared by `srx` (srx.cli) and `python -m srx.serve.loadtest`, so that both end a failure
the same way: `srx: error: ...` on stderr with exit code 2 for bad input and 1 for failed
work (SrxError.exit_code), 128 + the signal when interrupted, and a traceback only with
`--debug` (or SRX_DEBUG=1). Human text goes to stdout, or to stderr when `--json -` takes
stdout.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

import click

from srx.errors import SrxError, first_line
from srx.interrupt import Interrupted

# errno values that mean the disk (or a quota, or a file-size limit) is full, not that srx failed.
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("SRX_DEBUG", "") not in ("", "0")


def fail(message: str, code: int) -> NoReturn:
    one_line = " ".join(message.split())  # a message that quotes a library's text may hold newlines
    click.echo(f"srx: error: {one_line}", err=True)
    sys.exit(code)


def drop_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's flush at exit cannot fail a second time
    (it would print 'Exception ignored ... OSError' and exit 120)."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def internal_error(e: BaseException, debug: bool) -> NoReturn:
    """Last line of defence: a failure no srx check anticipated, still as one line."""
    if debug:
        traceback.print_exc()
    first = first_line(str(e), 200)
    if isinstance(e, OSError) and e.errno in FULL:
        drop_stdout()
        where = e.filename or "the output (standard output?)"
        fail(f"cannot write {where}: {e.strerror}; free some space or write elsewhere", 2)
    if isinstance(e, MemoryError) or "out of memory" in first.lower() or "can't allocate memory" in first:
        fail(
            f"ran out of memory ({type(e).__name__}: {first}): use a smaller --input or --tile, "
            "or close other programs",
            1,
        )
    fail(f"internal error: {type(e).__name__}: {first} (run again with --debug for the traceback)", 1)


def exit_for(
    e: BaseException,
    debug: bool,
    *,
    otherwise: Callable[[BaseException, bool], NoReturn] = internal_error,
    interrupted: str = "interrupted; no partial output was left",
) -> NoReturn:
    """Exit with the one line and the code for `e`, raised out of a click command; what is
    neither click's, srx's, an interrupt nor a closed pipe goes to `otherwise`."""
    if isinstance(e, click.exceptions.Exit):
        sys.exit(e.exit_code)
    if isinstance(e, click.exceptions.Abort):
        fail("interrupted", 130)
    if isinstance(e, click.exceptions.NoArgsIsHelpError) and isinstance(e.ctx.command, click.Group):
        choices = ", ".join(sorted(e.ctx.command.commands))
        fail(f"no command given: choose one of {choices} (see '{e.ctx.command_path} --help')", 2)
    if isinstance(e, click.UsageError):
        if debug:
            traceback.print_exc()
        cmd = e.ctx.command_path if e.ctx else "srx"
        fail(f"{e.format_message()} (see '{cmd} --help')", 2)
    if isinstance(e, click.ClickException):
        fail(e.format_message(), e.exit_code)
    if isinstance(e, SrxError):
        if debug:
            traceback.print_exc()
        fail(str(e), e.exit_code)
    if isinstance(e, Interrupted):
        fail(f"interrupted by {signal.Signals(e.signum).name}; no partial output was left", 128 + e.signum)
    if isinstance(e, KeyboardInterrupt):
        fail(interrupted, 130)
    if isinstance(e, BrokenPipeError):
        drop_stdout()
        sys.exit(1)
    otherwise(e, debug)


def human(text: str, json_path: str | None) -> None:
    """Human-readable output; goes to stderr when the JSON goes to stdout."""
    click.echo(text, err=json_path == "-")


def emit_json(result: dict[str, Any], json_path: str | None) -> None:
    """`--json PATH`: the result to PATH (written whole or not at all), '-': to stdout."""
    if json_path is None:
        return
    if json_path == "-":
        click.echo(json.dumps(result, indent=2))
        return
    from srx.fileio import write_json_atomic

    write_json_atomic(json_path, result)


def warn(message: str) -> None:
    click.echo(f"srx: warning: {message}", err=True)
