"""Click options several commands share, and the checks of their values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from srx.errors import BadInput

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

MODEL_HELP = "What to run: a checkpoint, an srx ONNX, or an engine with its sidecar (built by srx build-engine)."
SCALE_HELP = "Scale of the embedded default model (2, 3, 4; default 4)."
DEVICE_HELP = "Default: cuda when a GPU is visible."


def backend_names() -> str:
    from srx.runtime.registry import backend_names as names

    return ", ".join(names())


BACKEND_HELP = f"auto (the fastest exact one that can run here), or one of: {backend_names()}."
BACKENDS_HELP = f"Comma-separated backends, or 'all' (default: the set for --device): {backend_names()}."


def _stack(*decorators: Decorator) -> Decorator:
    """Apply `decorators` as if written top to bottom above a function (so --help keeps their order)."""

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        for d in reversed(decorators):
            f = d(f)
        return f

    return apply


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--json",
        "json_path",
        type=str,
        default=None,
        metavar="PATH",
        help="Also write machine-readable results here ('-' = stdout).",
    )(f)


def quiet_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-q",
        "--quiet",
        is_flag=True,
        help="No progress bars or stage notes (shown on a terminal only; never with --json -).",
    )(f)


def device_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help=DEVICE_HELP)(f)


def backend_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--backend", default="auto", show_default=True, metavar="NAME", help=BACKEND_HELP)(f)


def model_options(weights_metavar: str, weights_help: str, model_metavar: str, model_help: str) -> Decorator:
    """--weights, --model, --scale, --param-key of the commands that run a network (bench, upscale, serve)."""
    return _stack(
        click.option("--weights", default=None, metavar=weights_metavar, help=weights_help),
        click.option("--model", "model_file", default=None, metavar=model_metavar, help=model_help),
        click.option("--scale", type=int, default=None, help=SCALE_HELP),
        click.option("--param-key", default=None, help="Checkpoint entry to read (default: params)."),
    )


def check_writable_outputs(*pairs: tuple[str, str | None]) -> None:
    """Refuse unwritable output paths (option, path) before the work, not after it."""
    from srx.fileio import check_writable

    for option, path in pairs:
        if path not in (None, "-"):
            check_writable(path, option)


def check_json_path(json_path: str | None) -> None:
    check_writable_outputs(("--json", json_path))


def require_gpu(option: str, instead: str) -> None:
    from srx.runtime.device import NO_GPU, has_cuda

    if not has_cuda():
        raise BadInput(f"{option}: {NO_GPU}; {instead}")


def parse_scale(value: int | None) -> int | None:
    if value is not None and value not in (2, 3, 4):
        raise BadInput(f"--scale {value} is not supported: use 2, 3 or 4")
    return value


def default_device(device: str | None) -> str:
    from srx.runtime.device import has_cuda

    return device or ("cuda" if has_cuda() else "cpu")


def model_ref(weights: str | None, model_file: str | None, scale: int | None, param_key: str | None) -> Any:
    """The ModelRef that --weights / --model / --scale / --param-key name (srx.modelref)."""
    from srx.modelref import resolve_model_ref

    return resolve_model_ref(model_file, weights, scale=scale, param_key=param_key)
