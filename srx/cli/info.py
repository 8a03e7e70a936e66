"""`srx info`: what a checkpoint, ONNX model or engine holds."""

from __future__ import annotations

import click

from srx.cli.group import cli
from srx.cli.options import check_json_path, json_option, parse_scale
from srx.cli.output import emit_json, human


@cli.command(short_help="What a checkpoint, ONNX or engine holds.")
@click.argument("file", type=str)
@click.option("--param-key", default=None, help="Checkpoint entry to read (default: params, as BasicSR).")
@click.option("--scale", type=int, default=None, help="For a shipped network (default, team15): its scale (default 4).")
@json_option
def info(file: str, param_key: str | None, scale: int | None, json_path: str | None) -> None:
    """Show what a checkpoint, ONNX model or engine holds."""
    from srx.inspect import describe, format_description

    check_json_path(json_path)
    d = describe(file, param_key=param_key, scale=parse_scale(scale))
    human(format_description(d), json_path)
    emit_json(d, json_path)
