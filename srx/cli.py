"""The `srx` command line: thin click adapters over library functions (CLI.md).

Every failure ends as one line on stderr (`srx: error: ...`) with exit code 2 for bad
input, 1 for failed work; `--debug` shows the traceback. Heavy imports happen inside
commands so `srx --help` needs none of torch, onnx, TensorRT or Triton.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from srx import __version__
from srx.errors import BadInput, MissingDependency, SrxError
from srx.export import DEFAULT_OPSET, DEFAULT_VERIFY_INPUT, MAX_OPSET, MIN_OPSET
from srx.interrupt import Interrupted, raise_interrupted
from srx.spec import ARCHS

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

if TYPE_CHECKING:
    from srx.export.model import ExportReport
    from srx.sizes import Size


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("SRX_DEBUG", "") not in ("", "0")


def _command_name(args: list[str]) -> str:
    """'srx eval' for the command on the line, for messages that name it."""
    return " ".join(["srx", *[a for a in args if a in cli.commands][:1]])


def _fail(message: str, code: int) -> None:
    one_line = " ".join(message.split())  # a message that quotes a library's text may hold newlines
    click.echo(f"srx: error: {one_line}", err=True)
    sys.exit(code)


# errno values that mean the disk (or a quota, or a file-size limit) is full, not that srx failed.
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _drop_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's flush at exit cannot fail a second time
    (it would print 'Exception ignored ... OSError' and exit 120)."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _unexpected(e: Exception, debug: bool) -> None:
    """Last line of defence: a failure no srx check anticipated, still as one line."""
    if debug:
        traceback.print_exc()
    first = (str(e).strip().splitlines() or [""])[0][:200]
    if isinstance(e, OSError) and e.errno in FULL:
        _drop_stdout()
        where = e.filename or "the output (standard output?)"
        _fail(f"cannot write {where}: {e.strerror}; free some space or write elsewhere", 2)
    if isinstance(e, MemoryError) or "out of memory" in first.lower() or "can't allocate memory" in first:
        _fail(
            f"ran out of memory ({type(e).__name__}: {first}): use a smaller --input or --tile, "
            "or close other programs",
            1,
        )
    _fail(f"internal error: {type(e).__name__}: {first} (run again with --debug for the traceback)", 1)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the click group and turn every failure into one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    # --debug works anywhere on the line (`srx upscale ... --debug`), not only before the command.
    args = [a for a in args if a != "--debug"]
    signal.signal(signal.SIGTERM, raise_interrupted)
    signal.signal(signal.SIGINT, raise_interrupted)
    try:
        # Not cli.main(): it turns KeyboardInterrupt (so also our SIGTERM) into click's Abort,
        # which loses the signal, prints a blank line and bypasses the handlers below.
        with cli.make_context("srx", args) as ctx:
            cli.invoke(ctx)
        sys.stdout.flush()  # a full disk or a closed pipe on stdout shows here, not at exit
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        _fail("interrupted", 130)
    except click.exceptions.NoArgsIsHelpError:
        _fail(f"no command given: choose one of {', '.join(sorted(cli.commands))} (see 'srx --help')", 2)
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
        _drop_stdout()
        sys.exit(1)
    except ModuleNotFoundError as e:
        # An optional package the command imports lazily (torch for checkpoints, onnxruntime,
        # TensorRT, ...): the user's install, not an srx bug.
        missing = MissingDependency.from_import_error(e, f"'{_command_name(args)}'")
        if missing is None:
            _unexpected(e, debug)
        if debug:
            traceback.print_exc()
        _fail(str(missing), missing.exit_code)
    except PermissionError as e:
        # A file or folder the user pointed at (or its parent) that srx may not read or
        # write: their environment, not an srx bug. The specific checks give better words.
        if debug:
            traceback.print_exc()
        _fail(f"cannot access {e.filename or 'a file'} ({e.strerror or e}): check its permissions", 2)
    except Exception as e:
        _unexpected(e, debug)


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


def _progress_lines() -> Callable[[str], None] | None:
    """Progress messages on stderr for a person at a terminal; none in pipes and logs, where
    stderr must hold only the one error line (as the tqdm bars of the other commands)."""
    if not sys.stderr.isatty():
        return None
    return lambda message: click.echo(message, err=True)


def _check_json_path(json_path: str | None) -> None:
    """Refuse an unwritable --json before the work, not after it."""
    if json_path not in (None, "-"):
        from srx.fileio import check_writable

        check_writable(json_path, "--json")


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

    _check_json_path(json_path)
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
    metavar="bicubic|bicubic-rgb|CKPT|ONNX|ENGINE",
    help="What to score (default: bicubic, the published baseline row; bicubic-rgb upscales the same RGB LR a network gets; "
    "an srx ONNX runs in onnxruntime, an engine in TensorRT).",
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
    _check_json_path(json_path)
    result = evaluate(
        dataset, weights or model or "bicubic", parse_scale(scale), param_key=param_key, progress=sys.stderr.isatty()
    )
    human(format_result(result), json_path)
    emit_json(result.to_dict(), json_path)


def _progress_factory() -> Any:
    """tqdm bars on stderr (hidden when stderr is not a terminal)."""
    from tqdm import tqdm

    def make(desc: str, total: int) -> Any:
        return tqdm(total=total, desc=f"{desc:<17}", unit="run", file=sys.stderr, leave=False, disable=None)

    return make


@cli.command()
@click.option("--input", "input_size", default="320x180", show_default=True, help="LR input size WIDTHxHEIGHT.")
@click.option("--weights", default=None, help="Checkpoint (default: the embedded untrained model).")
@click.option("--model", "model_file", default=None, help="Exported model: .onnx, or .engine with its sidecar.")
@click.option("--scale", type=int, default=None, help="Scale of the embedded default model (2, 3, 4; default 4).")
@click.option("--param-key", default=None, help="Checkpoint entry to read (default: params).")
@click.option("--backends", default=None, help="Comma-separated backends, or 'all' (default: the set for --device).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: cuda when a GPU is visible.")
@click.option("--runs", type=int, default=None, help="Timed runs per backend (default 50 on CUDA, 10 on CPU).")
@click.option("--warmup", type=int, default=None, help="Untimed runs first (default 10 on CUDA, 1 on CPU).")
@click.option("--images", default=None, help="Folder of images to use as inputs (cropped to --input).")
@click.option("--threads", type=int, default=None, help="CPU threads for torch and onnxruntime (default: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic inputs.")
@click.option("--plot", "plot_path", default=None, metavar="PNG", help="Write a latency / memory plot here.")
@click.option("--compare", "compare_path", default=None, metavar="OLD.json", help="Show the change against a run.")
@click.option("--batch", type=int, default=1, show_default=True, help="Inputs per run; FPS counts frames.")
@click.option("--profile", is_flag=True, help="Add where the time goes per backend, by operation kind.")
@click.option(
    "--compile-mode",
    type=click.Choice(COMPILE_MODES),
    default=None,
    help="torch.compile mode of the torch-compile rows (default: reduce-overhead for FP16 on CUDA, else default).",
)
@click.option("--video", default=None, metavar="FILE", help="Time the whole video pipeline on FILE, per stage.")
@click.option("--codec", default=None, help="With --video: the encoder, as srx upscale --codec.")
@click.option("--crf", type=int, default=None, help="With --video: as srx upscale --crf.")
@click.option("--preset", default=None, help="With --video: as srx upscale --preset.")
@json_option
def bench(
    input_size: str,
    weights: str | None,
    model_file: str | None,
    scale: int | None,
    param_key: str | None,
    backends: str | None,
    device: str | None,
    runs: int | None,
    warmup: int | None,
    images: str | None,
    threads: int | None,
    seed: int,
    plot_path: str | None,
    compare_path: str | None,
    batch: int,
    profile: bool,
    compile_mode: str | None,
    video: str | None,
    codec: str | None,
    crf: int | None,
    preset: str | None,
    json_path: str | None,
) -> None:
    """Latency, peak memory and accuracy of every backend (CLI.md)."""
    # Before torch loads OpenMP: with OpenMP's default spin-waiting, eager PyTorch on a CPU
    # shared with other work ran 3-4x slower (docs/bench.md), which would flatter every
    # other backend. Passive waiting is fair to it; a user's setting wins (recorded).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if video is not None:
        image_only = {"--images": images, "--plot": plot_path, "--compare": compare_path, "--profile": profile or None}
        given = [k for k, v in image_only.items() if v is not None]
        if click.get_current_context().get_parameter_source("input_size") != click.core.ParameterSource.DEFAULT:
            given.append("--input")
        if given:
            raise BadInput(
                f"{', '.join(given)} cannot be combined with --video (the frames and their size are the video's)"
            )
        model = (weights, model_file, scale, param_key, backends, device, runs, warmup, threads, batch)
        _bench_video(video, model, {"codec": codec, "crf": crf, "preset": preset}, json_path)
        return
    if codec is not None or crf is not None or preset is not None:
        raise BadInput("--codec, --crf and --preset apply to --video")
    from pathlib import Path

    from srx.bench.engine import BenchConfig, run_bench
    from srx.bench.report import compare, format_compare, format_table, load_result
    from srx.fileio import check_writable
    from srx.runtime.registry import parse_backends
    from srx.runtime.source import ModelSource
    from srx.sizes import parse_size

    size = parse_size(input_size, what="--input")
    parse_scale(scale)
    names = parse_backends(backends) if backends is not None else None
    if runs is not None and runs < 1:
        raise BadInput(f"--runs {runs}: need at least 1 timed run")
    if warmup is not None and warmup < 0:
        raise BadInput(f"--warmup {warmup}: cannot be negative; use 0 or more")
    if threads is not None and threads < 1:
        raise BadInput(f"--threads {threads}: need at least 1; use 1 or more (default: every CPU)")
    if images is not None and not Path(images).is_dir():
        raise BadInput(f"--images {images} is not a folder: give a folder of images")
    old = load_result(compare_path) if compare_path else None
    for p, option in ((json_path, "--json"), (plot_path, "--plot")):
        if p not in (None, "-"):
            check_writable(p, option)
    if device == "cuda":
        from srx.runtime.device import NO_GPU, has_cuda

        if not has_cuda():
            raise BadInput(f"--device cuda: {NO_GPU}; use --device cpu")
    cfg = BenchConfig(size.height, size.width, device, names, runs, warmup, images, seed, threads)
    cfg.batch, cfg.profile, cfg.compile_mode = batch, profile, compile_mode
    with ModelSource.from_options(weights, model_file, scale, param_key) as source:
        result = run_bench(source, cfg, progress=_progress_factory(), command=["srx", *sys.argv[1:]])
    text = format_table(result)
    if old is not None:
        result["compare"] = {"old": compare_path, **compare(result, old)}
        text += "\n\n" + format_compare(result["compare"], compare_path or "")
    human(text, json_path)
    emit_json(result, json_path)
    if plot_path:
        from srx.bench.plot import plot_result

        plot_result(result, plot_path)
    if all(r["status"] == "skipped" for r in result["results"]):
        raise BadInput(
            f"no backend can run {source.origin} on {result['device']['kind']} here (reasons in the table above): "
            "install what a row asks for, or choose another --model, --backends or --device"
        )
    failed = [r["backend"] for r in result["results"] if r["status"] == "failed"]
    if failed:
        raise SrxError(f"backend(s) failed: {', '.join(failed)} (reasons in the table above)")


def _bench_video(video: str, model: tuple[Any, ...], encoder: dict[str, Any], json_path: str | None) -> None:
    """srx bench --video FILE (srx.video.bench, issue 15)."""
    from srx.video.bench import format_video_bench
    from srx.video.command import bench_command

    _check_json_path(json_path)
    result = bench_command(video, *model, encoder=encoder, progress=_progress_factory(), command=["srx", *sys.argv[1:]])
    human(format_video_bench(result), json_path)
    emit_json(result, json_path)
    if all(r["status"] == "skipped" for r in result["results"]):
        raise BadInput("no backend can run here (reasons above): install what a row asks for, or choose --backends")
    failed = [r["backend"] for r in result["results"] if r["status"] == "failed"]
    if failed:
        raise SrxError(f"backend(s) failed: {', '.join(failed)} (reasons above)")


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "out", required=True, help="Output file (one input) or folder.")
@click.option("--weights", default=None, help="Checkpoint (default: the embedded untrained model).")
@click.option("--model", "model_file", default=None, help="Exported model: .onnx, or .engine with its sidecar.")
@click.option("--scale", type=int, default=None, help="Scale of the embedded default model (2, 3, 4; default 4).")
@click.option("--param-key", default=None, help="Checkpoint entry to read (default: params).")
@click.option("--tile", type=int, default=None, help="Tile side in input pixels (default: 512 above 1 MP; -1: never).")
@click.option("--tile-overlap", type=int, default=None, help="Context around each tile (default: the model's reach).")
@click.option("--backend", default="auto", show_default=True, help="Backend name (see srx bench), or auto.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: cuda when a GPU is visible.")
@click.option(
    "--codec", default=None, help="Videos: codec or encoder (default: the input's, else H.264; docs/video.md)."
)
@click.option("--crf", type=int, default=None, help="Videos: constant quality, lower is better (default: x264 18).")
@click.option("--batch", type=int, default=1, show_default=True, help="Videos: frames per model call.")
@click.option("--start", type=float, default=None, metavar="SECONDS", help="Videos: start of the clip to upscale.")
@click.option("--duration", type=float, default=None, metavar="SECONDS", help="Videos: length of the clip.")
@click.option("--preset", default=None, help="Videos: encoder speed preset (x264 / x265: ultrafast .. veryslow).")
@json_option
def upscale(
    inputs: tuple[str, ...],
    out: str,
    weights: str | None,
    model_file: str | None,
    scale: int | None,
    param_key: str | None,
    tile: int | None,
    tile_overlap: int | None,
    backend: str,
    device: str | None,
    codec: str | None,
    crf: int | None,
    batch: int,
    start: float | None,
    duration: float | None,
    preset: str | None,
    json_path: str | None,
) -> None:
    """Upscale PNG / JPEG / WebP files or folders (alpha, 16-bit and EXIF orientation kept), or videos."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench: spinning OpenMP collapses on a busy CPU
    from srx.runtime.device import has_cuda
    from srx.runtime.registry import auto_backend, get_backend, open_runner
    from srx.runtime.source import ModelSource
    from srx.upscale import output_folder, plan_jobs, upscale_files

    parse_scale(scale)
    if backend != "auto":
        get_backend(backend)
    if tile is not None and tile == 0:
        tile = None
    if tile_overlap is not None and tile_overlap < 0:
        raise BadInput(f"--tile-overlap {tile_overlap}: cannot be negative; use 0 or more (default: the model's reach)")
    _check_json_path(json_path)
    from srx.video.command import VideoOptions, clip_options, is_video_run

    video = VideoOptions(codec, crf, batch, clip_options(start, duration), tile, tile_overlap, preset)
    if is_video_run(inputs):
        _upscale_videos(list(inputs), out, weights, model_file, scale, param_key, backend, device, video, json_path)
        return
    if video != VideoOptions(tile=tile, overlap=tile_overlap):
        raise BadInput(
            "--codec, --crf, --preset, --batch, --start and --duration apply to videos; these inputs are images"
        )
    jobs = plan_jobs(list(inputs), out)
    dev = device or ("cuda" if has_cuda() else "cpu")
    with ModelSource.from_options(weights, model_file, scale, param_key) as source:
        if tile is not None and tile != -1:
            from srx.tiling import plan_tiling

            plan_tiling(source.spec, 1 << 14, 1 << 14, tile, tile_overlap)  # refuse a bad --tile before any work
        name = auto_backend(source, dev) if backend == "auto" else backend
        from tqdm import tqdm

        def bar(desc: str, total: int | None) -> Any:
            return tqdm(total=total, desc=desc[:30], unit="tile", file=sys.stderr, leave=False, disable=None)

        def report(path: Any, message: str) -> None:
            click.echo(f"srx: error: {message}", err=True)

        files = tqdm(total=len(jobs), desc="images", unit="img", file=sys.stderr, leave=False, disable=None)

        def on_error(path: Any, message: str) -> None:
            files.update(1)
            report(path, message)

        with output_folder(jobs), open_runner(name, source, dev) as runner:

            def forward(x: Any) -> Any:
                return runner.run(x)

            result = upscale_files(
                jobs, forward, source.spec, tile=tile, overlap=tile_overlap, on_error=on_error, progress=bar
            )
        files.close()
        result.update({"backend": name, "device": dev, "model": source.spec.label})
    lines = [f"upscaled {len(result['outputs'])} image(s) with {source.spec.label} on {name} ({dev})"]
    for o in result["outputs"]:
        t = o["tiling"]
        how = (
            "whole"
            if t["tile"] is None
            else f"{o['tiles']} tiles of {t['tile']} (+{t['tile_overlap']}), "
            + ("exact" if t["exact"] else f"blended: {t['note']}")
        )
        lines.append(f"  {o['input']} -> {o['output']} ({o['size_out']}, {how}, {o['seconds']:.1f} s)")
    human("\n".join(lines), json_path)
    emit_json(result, json_path)
    if result["failed"]:
        n, total = len(result["failed"]), len(jobs)
        if n == total:
            raise BadInput(f"none of the {total} inputs could be upscaled (reasons above): fix or remove them")
        raise BadInput(f"{n} of {total} input(s) could not be upscaled (listed above); the others were written")


def _upscale_videos(
    inputs: list[str],
    out: str,
    weights: str | None,
    model_file: str | None,
    scale: int | None,
    param_key: str | None,
    backend: str,
    device: str | None,
    video: Any,
    json_path: str | None,
) -> None:
    """srx upscale on video files (srx.video.command, issue 15)."""
    from srx.runtime.device import has_cuda
    from srx.runtime.registry import auto_backend
    from srx.runtime.source import ModelSource
    from srx.video.avlib import require_av
    from srx.video.command import upscale_command

    require_av()  # before the model loads: a missing PyAV is the first thing to say
    dev = device or ("cuda" if has_cuda() else "cpu")
    with ModelSource.from_options(weights, model_file, scale, param_key) as source:
        name = auto_backend(source, dev) if backend == "auto" else backend
        text, result = upscale_command(inputs, out, source, name, dev, video, echo=lambda m: click.echo(m, err=True))
    human(text, json_path)
    emit_json(result, json_path)
    if result.get("summary_error"):
        raise BadInput(result["summary_error"])


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
    for path, option in ((output, "-o"), (None if json_path == "-" else json_path, "--json")):
        if path is not None:
            check_writable(path, option)
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


# -- precision and engines (issue 4) ---------------------------------------------------------


@cli.command()
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
    json_path: str | None,
) -> None:
    """Explicit INT8 Q/DQ ONNX for TensorRT, calibrated on a folder of images."""
    from srx.precision.int8 import QuantSettings, quantize_file

    _check_json_path(json_path)
    settings = QuantSettings(
        calibration_images=calib_images,
        held_out_images=held_out,
        crop=crop,
        sensitivity_crops=sensitivity_crops,
        target_drop_db=target_drop,
        high_precision=high_precision,
        method=method,
        seed=seed,
    )
    r = quantize_file(
        model,
        calib_dir,
        output,
        settings=settings,
        max_psnr_drop=max_psnr_drop,
        progress=_progress_lines(),
    )
    human(
        "\n".join(
            [
                f"wrote {r['onnx']}",
                f"  INT8 layers   {len(r['int8_layers'])} of {len(r['int8_layers']) + len(r['kept_layers'])}"
                + (f" (kept in {high_precision.upper()}: {', '.join(r['kept_layers'])})" if r["kept_layers"] else ""),
                f"  calibration   {r['calibration_images']} crops; {r['held_out_images']} images held back",
                f"  held-out      Y-PSNR {r['psnr_fp32_db']:.3f} dB FP32 -> {r['psnr_int8_db']:.3f} dB INT8 "
                f"(drop {r['psnr_drop_db']:.3f} dB); INT8 vs FP32 {r['psnr_vs_fp32']:.2f} dB",
            ]
        ),
        json_path,
    )
    emit_json(r, json_path)


@cli.command("build-engine")
@click.argument("model", type=str)
@click.option("--fp32", "fp32", is_flag=True, help="FP32 engine (TF32 off).")
@click.option("--fp16", "fp16", is_flag=True, help="FP16 with FP32 normalisation islands (writes the FP16 ONNX too).")
@click.option("--int8", "int8", is_flag=True, help="INT8 Q/DQ, calibrated on --calib-dir (writes the Q/DQ ONNX too).")
@click.option("--calib-dir", default=None, metavar="DIR", help="Training images for --int8 (never Set5/Set14).")
@click.option("--backend", type=click.Choice(["auto", "tensorrt", "tensorrt-rtx"]), default="auto", show_default=True)
@click.option("--min", "min_size", default=None, metavar="WxH", help="Smallest input (default 64x64).")
@click.option("--opt", "opt_size", default=None, metavar="WxH", help="Input to tune for (default 640x360).")
@click.option("--max", "max_size", default=None, metavar="WxH", help="Largest input (default 1920x1080).")
@click.option(
    "--batch", default=None, metavar="N|MIN:OPT:MAX", help="Batch size, or a dynamic batch range (default 1)."
)
@click.option("--workspace", type=int, default=None, metavar="MiB", help="Builder workspace cap (Jetson default 1024).")
@click.option("--target", type=click.Choice(["gpu", "jetson"]), default="gpu", show_default=True)
@click.option("--dla-core", type=int, default=None, metavar="N", help="Jetson DLA core (static shapes, GPU fallback).")
@click.option("--timing-cache", default=None, metavar="FILE", help="TensorRT timing cache to read and update.")
@click.option("--rtx-targets", default=None, metavar="CC,...", help="TensorRT-RTX compute capabilities, e.g. 8.6,8.9.")
@click.option("-o", "--output", default=None, help="Engine file (default: MODEL.<precision>.engine).")
@json_option
def build_engine(
    model: str,
    fp32: bool,
    fp16: bool,
    int8: bool,
    calib_dir: str | None,
    backend: str,
    min_size: str | None,
    opt_size: str | None,
    max_size: str | None,
    batch: str | None,
    workspace: int | None,
    target: str,
    dla_core: int | None,
    timing_cache: str | None,
    rtx_targets: str | None,
    output: str | None,
    json_path: str | None,
) -> None:
    """TensorRT / TensorRT-RTX engine + sidecar from an srx ONNX."""
    from srx.runtime.engine import engine_from_onnx

    _check_json_path(json_path)
    chosen = [name for name, on in (("fp32", fp32), ("fp16", fp16), ("int8", int8)) if on]
    if len(chosen) > 1:
        raise BadInput(f"give one precision, not {' and '.join('--' + c for c in chosen)}")
    r = engine_from_onnx(
        model,
        output,
        precision=chosen[0] if chosen else None,
        calib_dir=calib_dir,
        backend=backend,
        min_size=min_size,
        opt_size=opt_size,
        max_size=max_size,
        batch=batch,
        workspace_mib=workspace,
        target=target,
        dla_core=dla_core,
        timing_cache=timing_cache,
        rtx_targets=[t.strip() for t in rtx_targets.split(",") if t.strip()] if rtx_targets else None,
        progress=_progress_lines(),
        warn=lambda m: click.echo(f"srx: warning: {m}", err=True),
    )
    p = r["profile"]
    lines = [
        f"wrote {r['engine']} ({r['engine_bytes'] / 2**20:.1f} MiB) and {r['sidecar']}",
        f"  backend     {r['backend']} {r['backend_version']}, {r['network']}",
        f"  precision   {r['precision']}" + (f" (built from {r['precision_onnx']})" if r["precision_onnx"] else ""),
        f"  profile     {p['min']} .. {p['max']}, opt {p['opt']}, batch {p['batch']}",
        f"  built in    {r['build_seconds']:.1f} s",
    ]
    human("\n".join(lines), json_path)
    emit_json(r, json_path)
