"""Errors that end a command with one clear line and a defined exit code.

Library code raises these; `srx.cli` turns them into `srx: error: ...` on stderr.
Every message says what is wrong and what to do next.
"""

from __future__ import annotations


class SrxError(Exception):
    """Base class. `exit_code` is what the CLI exits with (CLI.md: 1 failed, 2 bad input)."""

    exit_code = 1


class BadInput(SrxError):
    """The user gave something srx cannot use: a file, a size, a flag. Exit code 2."""

    exit_code = 2


class MissingDependency(BadInput):
    """An optional package the command needs is not installed. Exit code 2."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python package '{package}', which is not installed: pip install 'srx[{extra}]'"
        )
        self.package = package


class CheckFailed(SrxError):
    """The work ran but a verification or accuracy gate failed. Exit code 1."""

    exit_code = 1
