"""`srx export`, `srx quantize`, `srx build-engine`: ONNX, INT8 Q/DQ ONNX, TensorRT engines."""

from __future__ import annotations

from typing import Any

import click

from srx.cli.group import cli
from srx.cli.options import check_json_path, check_writable_outputs, json_option, parse_scale, quiet_option
from srx.cli.output import emit_json, human, show, warn
from srx.errors import BadInput
from srx.export import DEFAULT_OPSET, DEFAULT_VERIFY_INPUT, MAX_OPSET, MIN_OPSET
from srx.progress import Progress
from srx.spec import ARCHS


@cli.command(short_help="Exact ONNX, verified against PyTorch.")
@click.option(
    "--weights",
    default=None,
    metavar="CKPT",
    help="Checkpoint (.pth/.safetensors), or a shipped network: default, seeded, team15. Default: default.",
)
@click.option(
    "--arch",
    type=click.Choice(["auto", *ARCHS]),
    default="auto",
    show_default=True,
    help="Architecture (auto: detect from the checkpoint).",
)
@click.option("--scale", type=int, default=None, help="2, 3 or 4 (default: the checkpoint's, or 4).")
@click.option("--param-key", default=None, help="Checkpoint entry to read (default: params, as BasicSR).")
@click.option(
    "--input",
    "input_text",
    default=DEFAULT_VERIFY_INPUT,
    show_default=True,
    metavar="WxH",
    help="Size verified against PyTorch; with --static, the graph's fixed size.",
)
@click.option("--static", is_flag=True, help="Fixed-size graph (batch 1, --input size) instead of dynamic shapes.")
@click.option(
    "--opset",
    type=int,
    default=DEFAULT_OPSET,
    show_default=True,
    help=f"ONNX opset, {MIN_OPSET}..{MAX_OPSET} ({MIN_OPSET} for TensorRT 8.6 / JetPack 6.0).",
)
@click.option("-o", "--output", default=None, metavar="OUT.onnx", help="Output file (default: derived from the model).")
@click.option(
    "--triton-repo",
    default=None,
    metavar="DIR",
    help="Also write a Triton model repository entry for the ONNX here (defaults of 'srx serve-config').",
)
@json_option
def export(
    weights: str | None,
    arch: str,
    scale: int | None,
    param_key: str | None,
    input_text: str,
    static: bool,
    opset: int,
    output: str | None,
    triton_repo: str | None,
    json_path: str | None,
) -> None:
    """Export an exact ONNX model (dynamic batch, height, width) and verify it against PyTorch."""
    from srx.export import check_opset
    from srx.sizes import parse_size

    parse_scale(scale)
    check_opset(opset)
    size = parse_size(input_text, what="--input")
    check_writable_outputs(("-o", output), ("--json", json_path))
    from srx.models import model_from_options

    model = model_from_options(weights, arch=arch, scale=scale, param_key=param_key)
    spec = model.spec
    spec.check_input_size(size.height, size.width)
    from srx.export.model import default_onnx_name, export_onnx

    if output is None:
        output = default_onnx_name(weights, spec.arch, spec.scale, size if static else None)
    if triton_repo is not None:
        from pathlib import Path

        from srx.serve.repository import check_destination, model_name_from

        check_destination(model_name_from(Path(output), None), triton_repo)  # before the export, not after
    report = export_onnx(model, output, opset=opset, dynamic=not static, input_size=size)
    result = report.to_json()
    text = report.format()
    if triton_repo is not None:
        from srx.serve.repository import format_written, write_model_repository

        result["triton_repo"] = write_model_repository(output, triton_repo)
        text += "\n" + format_written(result["triton_repo"])
    human(text, json_path)
    emit_json(result, json_path)


# -- precision and engines (issue 4) ---------------------------------------------------------


@cli.command(short_help="INT8 Q/DQ ONNX, calibrated on images.")
@click.argument("model", type=str)
@click.option("--calib-dir", required=True, metavar="DIR", help="Training images to calibrate on (never Set5/Set14).")
@click.option("-o", "--output", default=None, help="Output ONNX (default: MODEL with .int8.onnx).")
@click.option(
    "--max-psnr-drop", type=float, default=None, metavar="DB", help="Fail (exit 1) if held-out Y-PSNR drops more."
)
@click.option(
    "--target-drop",
    type=float,
    default=0.03,
    show_default=True,
    metavar="DB",
    help="Keep the most sensitive layers out of INT8 until the drop on calibration crops is below this.",
)
@click.option(
    "--high-precision",
    type=click.Choice(["fp16", "fp32"]),
    default="fp16",
    show_default=True,
    help="Precision of the non-INT8 layers (fp32 for TensorRT 8.6).",
)
@click.option(
    "--calib-images", type=int, default=64, show_default=True, help="Images (one random crop each) to calibrate on."
)
@click.option("--held-out", type=int, default=8, show_default=True, help="Images held back to report accuracy.")
@click.option("--crop", type=int, default=96, show_default=True, help="LR side of the calibration crops.")
@click.option(
    "--sensitivity-crops", type=int, default=16, show_default=True, help="Crops for the per-layer sensitivity."
)
@click.option(
    "--method",
    type=click.Choice(["mse", "percentile", "max"]),
    default="mse",
    show_default=True,
    help="How activation ranges are chosen.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split and the crops.")
@click.option(
    "--weight-bits",
    type=click.Choice(["8", "7"]),
    default="8",
    show_default=True,
    help="7 for OpenVINO on x86 CPUs without VNNI (AVX2 only), whose INT8 sums would overflow with 8.",
)
@quiet_option
@json_option
def quantize(
    model: str,
    calib_dir: str,
    output: str | None,
    max_psnr_drop: float | None,
    target_drop: float,
    high_precision: str,
    calib_images: int,
    held_out: int,
    crop: int,
    sensitivity_crops: int,
    method: str,
    seed: int,
    weight_bits: str,
    quiet: bool,
    json_path: str | None,
) -> None:
    """Explicit INT8 Q/DQ ONNX for TensorRT and OpenVINO, calibrated on a folder of images."""
    from srx.precision.int8 import QuantSettings, quantize_file

    check_json_path(json_path)
    settings = QuantSettings(
        calibration_images=calib_images,
        held_out_images=held_out,
        crop=crop,
        sensitivity_crops=sensitivity_crops,
        target_drop_db=target_drop,
        high_precision=high_precision,
        method=method,
        seed=seed,
        weight_bits=int(weight_bits),
    )
    progress = Progress.for_terminal(quiet=quiet, json_path=json_path)
    r = quantize_file(
        model, calib_dir, output, settings=settings, max_psnr_drop=max_psnr_drop, progress=progress, warn=warn
    )
    show(r, json_path)


@cli.command("build-engine", short_help="TensorRT / TensorRT-RTX engine from ONNX.")
@click.argument("model", type=str)
@click.option(
    "--fp32",
    "fp32",
    is_flag=True,
    help="FP32 engine (TF32 off). No precision flag: the ONNX's own, FP32 for srx export.",
)
@click.option("--fp16", "fp16", is_flag=True, help="FP16 with FP32 normalisation islands (writes the FP16 ONNX too).")
@click.option("--int8", "int8", is_flag=True, help="INT8 Q/DQ, calibrated on --calib-dir (writes the Q/DQ ONNX too).")
@click.option("--calib-dir", default=None, metavar="DIR", help="Training images for --int8 (never Set5/Set14).")
@click.option(
    "--backend",
    type=click.Choice(["auto", "tensorrt", "tensorrt-rtx"]),
    default="auto",
    show_default=True,
    help="Which TensorRT builds: tensorrt (GPU, Jetson; engines per GPU) or tensorrt-rtx (ahead of time, even on a CPU); "
    "auto: tensorrt if installed, else tensorrt-rtx.",
)
@click.option("--min", "min_size", default=None, metavar="WxH", help="Smallest input (default 64x64).")
@click.option("--opt", "opt_size", default=None, metavar="WxH", help="Input to tune for (default 640x360).")
@click.option("--max", "max_size", default=None, metavar="WxH", help="Largest input (default 1920x1080).")
@click.option(
    "--batch", default=None, metavar="N|MIN:OPT:MAX", help="Batch size, or a dynamic batch range (default 1)."
)
@click.option(
    "--workspace",
    "workspace_mib",
    type=int,
    default=None,
    metavar="MiB",
    help="Builder workspace cap (Jetson default 1024).",
)
@click.option("--target", type=click.Choice(["gpu", "jetson"]), default="gpu", show_default=True)
@click.option("--dla-core", type=int, default=None, metavar="N", help="Jetson DLA core (static shapes, GPU fallback).")
@click.option("--timing-cache", default=None, metavar="FILE", help="TensorRT timing cache to read and update.")
@click.option("--rtx-targets", default=None, metavar="CC,...", help="TensorRT-RTX compute capabilities, e.g. 8.6,8.9.")
@click.option("-o", "--output", default=None, help="Engine file (default: MODEL.<precision>.engine).")
@click.option("--overwrite", is_flag=True, help="Replace an existing FP16 / Q/DQ ONNX next to the engine.")
@quiet_option
@json_option
def build_engine(
    model: str, fp32: bool, fp16: bool, int8: bool, quiet: bool, json_path: str | None, **options: Any
) -> None:
    """TensorRT / TensorRT-RTX engine + sidecar from an srx ONNX."""
    from srx.engines.build import engine_from_onnx

    check_json_path(json_path)
    chosen = [name for name, on in (("fp32", fp32), ("fp16", fp16), ("int8", int8)) if on]
    if len(chosen) > 1:
        raise BadInput(f"give one precision, not {' and '.join('--' + c for c in chosen)}")
    targets = options.pop("rtx_targets")
    r = engine_from_onnx(
        model,
        options.pop("output"),
        precision=chosen[0] if chosen else None,
        rtx_targets=[t.strip() for t in targets.split(",") if t.strip()] if targets else None,
        progress=Progress.for_terminal(quiet=quiet, json_path=json_path),
        warn=warn,
        **options,
    )
    show(r, json_path)
