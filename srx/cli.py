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
from typing import Any

import click

from srx import __version__
from srx.errors import BadInput, SrxError


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


@cli.command(name="eval")
@click.option(
    "--dataset", required=True, type=str, metavar="DIR", help="Folder of HR images, or with HR/ and LR_bicubic/X{s}/."
)
@click.option("--scale", type=int, default=None, help="2, 3 or 4 (default: the checkpoint's scale; 4 for bicubic).")
@click.option(
    "--model",
    default=None,
    metavar="bicubic|bicubic-rgb|CKPT",
    help="What to score (default: bicubic, the published baseline row; bicubic-rgb upscales the same RGB LR a network gets).",
)
@click.option("--weights", default=None, metavar="CKPT", help="A checkpoint to score (same as --model CKPT).")
@click.option("--param-key", default=None, help="Checkpoint entry to read (default: params, as BasicSR).")
@json_option
def eval_(
    dataset: str,
    scale: int | None,
    model: str | None,
    weights: str | None,
    param_key: str | None,
    json_path: str | None,
) -> None:
    """Y-channel PSNR / SSIM on a dataset, with MATLAB-compatible bicubic LR (as published SR tables)."""
    from srx.evaluate import evaluate, format_result

    if model is not None and weights is not None:
        raise BadInput("give either --model or --weights, not both")
    result = evaluate(
        dataset, weights or model or "bicubic", parse_scale(scale), param_key=param_key, progress=sys.stderr.isatty()
    )
    human(format_result(result), json_path)
    emit_json(result.to_dict(), json_path)
