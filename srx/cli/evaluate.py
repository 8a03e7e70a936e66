"""`srx eval`: Y-PSNR / SSIM on a dataset (srx.evaluate)."""

from __future__ import annotations

import click

from srx.cli.group import cli
from srx.cli.options import backend_names, check_json_path, json_option, parse_scale, quiet_option
from srx.cli.output import show
from srx.errors import BadInput
from srx.progress import Progress


@cli.command(name="eval", short_help="Y-PSNR / SSIM on a dataset, as SR papers.")
@click.option(
    "--dataset", required=True, type=str, metavar="DIR", help="Folder of HR images, or with HR/ and LR_bicubic/X{s}/."
)
@click.option("--scale", type=int, default=None, help="2, 3 or 4 (default: the checkpoint's scale; 4 for bicubic).")
@click.option(
    "--model",
    default=None,
    metavar="bicubic|bicubic-rgb|default|team15|CKPT|ONNX|ENGINE",
    help="What to score (default: bicubic, the published baseline row; bicubic-rgb upscales the same RGB LR a network gets; "
    "default and team15 are the networks srx ships; "
    "an srx ONNX runs in onnxruntime, an engine in TensorRT).",
)
@click.option("--weights", default=None, metavar="CKPT", help="A checkpoint to score (same as --model CKPT).")
@click.option("--param-key", default=None, help="Checkpoint entry to read (default: params, as BasicSR).")
@click.option(
    "--backend",
    default=None,
    metavar="NAME",
    help=f"Run the network with this backend (default: PyTorch for checkpoints, auto for files): {backend_names()}.",
)
@quiet_option
@json_option
def eval_(
    dataset: str,
    scale: int | None,
    model: str | None,
    weights: str | None,
    param_key: str | None,
    backend: str | None,
    quiet: bool,
    json_path: str | None,
) -> None:
    """Y-channel PSNR / SSIM on a dataset, with MATLAB-compatible bicubic LR (as published SR tables)."""
    from srx.evaluate import evaluate

    if model is not None and weights is not None:
        raise BadInput("give either --model or --weights, not both")
    check_json_path(json_path)
    progress = Progress.for_terminal(quiet=quiet, json_path=json_path)
    result = evaluate(
        dataset,
        weights or model or "bicubic",
        parse_scale(scale),
        param_key=param_key,
        backend=backend,
        progress=progress,
    )
    show(result, json_path)
