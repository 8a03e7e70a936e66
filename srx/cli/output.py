"""How commands print: human text (stderr when the JSON takes stdout), `--json`, warnings."""

from __future__ import annotations

import json
from typing import Any

import click


def human(text: str, json_path: str | None) -> None:
    """Human-readable output; goes to stderr when the JSON goes to stdout."""
    click.echo(text, err=json_path == "-")


def emit_json(result: dict[str, Any], json_path: str | None) -> None:
    if json_path is None:
        return
    if json_path == "-":
        click.echo(json.dumps(result, indent=2))
        return
    from srx.fileio import write_json_atomic

    write_json_atomic(json_path, result)


def warn(message: str) -> None:
    click.echo(f"srx: warning: {message}", err=True)


def echo_err(message: str) -> None:
    click.echo(message, err=True)
