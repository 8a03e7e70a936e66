"""srx.program: the one error handler that srx and the load test share (issue 24), on a click
command of its own (no srx.cli): one line on stderr, the exit code, and the last resort given."""

from __future__ import annotations

import click
import pytest

from srx.errors import BadInput, CheckFailed
from srx.program import exit_for


def _exit(e: BaseException, **kw) -> int:
    """The exit code `exit_for` ends with."""
    with pytest.raises(SystemExit) as done:
        exit_for(e, False, **kw)
    return done.value.code


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (BadInput("--x 3: use 2"), 2, "srx: error: --x 3: use 2"),
        (CheckFailed("drop too large\nsecond line"), 1, "srx: error: drop too large second line"),
        (KeyboardInterrupt(), 130, "srx: error: interrupted; no partial output was left"),
        (RuntimeError("boom\nmore"), 1, "srx: error: internal error: RuntimeError: boom (run again with --debug"),
    ],
)
def test_one_line_and_the_exit_code(capsys, error, code, line):
    assert _exit(error) == code
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1 and "Traceback" not in err


def test_usage_errors_name_the_command_and_its_help(capsys):
    @click.group()
    def tool() -> None:
        pass

    @tool.command()
    @click.option("--n", type=int)
    def run(n: int) -> None:
        pass

    for argv, text in ((["run", "--n", "x"], "(see 'tool run --help')"), ([], "no command given: choose one of run")):
        with pytest.raises(click.exceptions.ClickException) as caught, tool.make_context("tool", argv) as ctx:
            tool.invoke(ctx)
        assert _exit(caught.value) == 2
        assert text in capsys.readouterr().err


def test_a_program_gives_its_own_last_resort_and_interrupt_text(capsys):
    def otherwise(e: BaseException, debug: bool):
        raise SystemExit(7)

    assert _exit(ValueError("x"), otherwise=otherwise) == 7
    assert _exit(KeyboardInterrupt(), interrupted="interrupted") == 130
    assert capsys.readouterr().err == "srx: error: interrupted\n"
