"""How commands print: human text and `--json` (srx.program), warnings."""

from __future__ import annotations

import click

from srx.program import emit_json, human, warn

__all__ = ["echo_err", "emit_json", "human", "warn"]


def echo_err(message: str) -> None:
    click.echo(message, err=True)
