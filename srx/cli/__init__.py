"""The `srx` command line: thin click adapters over library functions (docs/cli.md; docs/architecture.md#the-command-line).

One module per command group; each command parses its options, calls the library and
prints. `srx.cli.main` is the console entry point (pyproject's `srx` script).
"""

from __future__ import annotations

# Importing a command module registers its commands on the group (--help lists them sorted).
from srx.cli import bench, convert, evaluate, info, serve, train, upscale  # noqa: F401
from srx.cli.group import cli
from srx.cli.main import main

__all__ = ["cli", "main"]
