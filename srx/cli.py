"""The `srx` command line: thin click adapters over library functions (CLI.md).

Every failure ends as one line on stderr (`srx: error: ...`) with exit code 2 for bad
input, 1 for failed work; `--debug` shows the traceback. Heavy imports happen inside
commands so `srx --help` needs none of torch, onnx, TensorRT or Triton.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from srx import __version__
from srx.errors import BadInput, SrxError
from srx.export import DEFAULT_OPSET, DEFAULT_VERIFY_INPUT, MAX_OPSET, MIN_OPSET
from srx.spec import ARCHS

if TYPE_CHECKING:
    from srx.export.model import ExportReport
    from srx.sizes import Size


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: unwinds like Ctrl-C so atomic writers remove their temp files."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, _frame: Any) -> None:
    raise Interrupted(signum)


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("SRX_DEBUG", "") not in ("", "0")


def _fail(message: str, code: int) -> None:
    click.echo(f"srx: error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the click group and turn every failure into one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    signal.signal(signal.SIGINT, _raise_interrupted)
    try:
        cli.main(args=args, prog_name="srx", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        _fail("interrupted", 130)
    except click.UsageError as e:
        if debug:
            traceback.print_exc()
        cmd = e.ctx.command_path if e.ctx else "srx"
        _fail(f"{e.format_message()} (see '{cmd} --help')", 2)
    except click.ClickException as e:
        _fail(e.format_message(), e.exit_code)
    except SrxError as e:
        if debug:
            traceback.print_exc()
        _fail(str(e), e.exit_code)
    except Interrupted as e:
        _fail(f"interrupted by {signal.Signals(e.signum).name}; no partial output was left", 128 + e.signum)
    except KeyboardInterrupt:
        _fail("interrupted; no partial output was left", 130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as e:
        if debug:
            traceback.print_exc()
        first = (str(e).strip().splitlines() or [""])[0][:200]
        _fail(f"internal error: {type(e).__name__}: {first} (run again with --debug for the traceback)", 1)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="srx")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def cli(debug: bool) -> None:
    """srx: SAFMN super-resolution to ONNX, TensorRT and fused Triton kernels."""


# -- shared option helpers ---------------------------------------------------------------


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--json",
        "json_path",
        type=str,
        default=None,
        metavar="PATH",
        help="Also write machine-readable results here ('-' = stdout).",
    )(f)


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


def parse_scale(value: int | None) -> int | None:
    if value is not None and value not in (2, 3, 4):
        raise BadInput(f"--scale {value} is not supported: use 2, 3 or 4")
    return value


# -- commands ------------------------------------------------------------------------------


@cli.command()
@click.argument("file", type=str)
@click.option("--param-key", default=None, help="Checkpoint entry to read (default: params, as BasicSR).")
@json_option
def info(file: str, param_key: str | None, json_path: str | None) -> None:
    """Show what a checkpoint, ONNX model or engine holds."""
    from srx.inspect import describe, format_description

    d = describe(file, param_key=param_key)
    human(format_description(d), json_path)
    emit_json(d, json_path)


@cli.command()
@click.option(
    "--weights",
    default=None,
    metavar="CKPT",
    help="Checkpoint (.pth/.safetensors). Default: the embedded untrained model.",
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
    json_path: str | None,
) -> None:
    """Export an exact ONNX model (dynamic batch, height, width) and verify it against PyTorch."""
    # Before torch loads OpenMP: spinning OpenMP threads collapse on a busy CPU (the
    # PyTorch reference of the verification took 5.8 s instead of 1.8 s at load 6 on
    # 2 cores). Verification is a check, not a benchmark; a user's setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from srx.export import check_opset
    from srx.fileio import check_writable
    from srx.sizes import parse_size

    parse_scale(scale)
    check_opset(opset)
    size = parse_size(input_text, what="--input")
    if param_key is not None and weights is None:
        raise BadInput("--param-key needs --weights: the embedded default model has no checkpoint entries")
    for path in (output, None if json_path == "-" else json_path):
        if path is not None:
            check_writable(path)
    model = _model_from_options(weights, arch, scale, param_key)
    spec = model.spec
    spec.check_input_size(size.height, size.width)
    if output is None:
        output = _default_onnx_name(weights, spec.arch, spec.scale, size if static else None)

    from srx.export.model import export_onnx

    report = export_onnx(model, output, opset=opset, dynamic=not static, input_size=size)
    human(_format_export(report), json_path)
    emit_json(report.to_json(), json_path)


def _model_from_options(weights: str | None, arch: str, scale: int | None, param_key: str | None) -> Any:
    """The checkpoint's network, or the embedded default (untrained) for --arch and --scale."""
    if weights is not None:
        from srx.models import load_model

        return load_model(weights, arch=arch, scale=scale, param_key=param_key)
    from srx.models import DEFAULT_SEED, build_model, default_model

    scale = scale or 4
    if arch in ("auto", "safmn"):
        return default_model(scale)
    return build_model(
        arch, scale, seed=DEFAULT_SEED, trained=False, source=f"embedded default {arch} x{scale} (seed {DEFAULT_SEED})"
    )


def _default_onnx_name(weights: str | None, arch: str, scale: int, static_size: Size | None) -> str:
    from pathlib import Path

    stem = Path(weights).stem if weights else f"{arch.replace('-', '_')}_x{scale}"
    return f"{stem}_{static_size}.onnx" if static_size else f"{stem}.onnx"


def _format_export(report: ExportReport) -> str:
    spec = report.spec
    shape = (
        "dynamic batch, height, width" if report.dynamic else f"static 1x3x{report.input.height}x{report.input.width}"
    )
    simplify = (
        f"{report.simplifier}: {report.nodes_before_simplify:,} -> {report.nodes:,} nodes"
        if report.simplifier
        else "off"
    )
    lines = [
        f"exported {spec.label}",
        f"  onnx       {report.onnx} ({shape}; opset {report.opset}; {report.nodes:,} nodes; "
        f"{report.onnx_bytes / 1e6:.2f} MB)",
        f"  simplify   {simplify}",
        f"  verify     onnxruntime CPU vs PyTorch, max |diff| (tolerance {report.tolerance:g}):",
    ]
    for r in report.verify:
        lines.append(f"             {r.case.input:>9}  batch {r.case.batch}  {r.max_abs_diff:.2e}")
    total = sum(report.seconds.values())
    lines.append(f"  time       {total:.1f} s (verify {report.seconds.get('verify', 0):.1f} s)")
    return "\n".join(lines)
