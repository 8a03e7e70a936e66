"""How commands print: human text and `--json` (srx.program), warnings, and typed results."""

from __future__ import annotations

from typing import Any, Protocol

import click

from srx.program import emit_json, human, warn

__all__ = ["Result", "echo_err", "emit_json", "human", "show", "warn"]


def echo_err(message: str) -> None:
    click.echo(message, err=True)


class Result(Protocol):
    """A command's typed result (srx.bench.result.BenchResult, srx.evaluate.EvalResult, ...):
    the text and the `--json` record both render the same object."""

    def format(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


def show(result: Result, json_path: str | None) -> None:
    """Print `result` for people (stderr when the JSON takes stdout) and write its `--json`."""
    human(result.format(), json_path)
    emit_json(result.to_json(), json_path)
