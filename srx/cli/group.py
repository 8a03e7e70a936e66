"""The `srx` click group every command module registers on (docs/cli.md)."""

from __future__ import annotations

import click

from srx import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="srx")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def cli(debug: bool) -> None:
    """srx: SAFMN super-resolution to ONNX, TensorRT and fused Triton kernels."""
