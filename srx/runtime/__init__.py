"""Runners: one contract (srx.runtime.base.Runner) over every backend in docs/cli.md#backends.

Torch-free at import: the registry checks availability with find_spec and ctypes, and
each runner class is imported only when it is opened.
"""

from __future__ import annotations

from srx.runtime.base import Availability, Runner, validate_input
from srx.runtime.registry import (
    BACKENDS,
    Backend,
    backend_names,
    check_backend,
    default_backends,
    get_backend,
    open_runner,
    parse_backends,
    register_backend,
)
from srx.runtime.source import ModelSource

__all__ = [
    "BACKENDS",
    "Availability",
    "Backend",
    "ModelSource",
    "Runner",
    "backend_names",
    "check_backend",
    "default_backends",
    "get_backend",
    "open_runner",
    "parse_backends",
    "register_backend",
    "validate_input",
]
