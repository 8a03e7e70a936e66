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
from typing import Any

import click

from srx import __version__
from srx.errors import BadInput, MissingDependency, SrxError, first_line
from srx.export import DEFAULT_OPSET, DEFAULT_VERIFY_INPUT, MAX_OPSET, MIN_OPSET
from srx.interrupt import Interrupted, raise_interrupted
from srx.progress import Progress
from srx.spec import ARCHS

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


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
    first = first_line(str(e), 200)
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
    # Before torch loads OpenMP (every command imports it lazily, after this): with OpenMP's
    # default spin-waiting, PyTorch on a CPU shared with other work ran 3-4x slower
    # (docs/bench.md; the export's verification took 5.8 s instead of 1.8 s at load 6 on 2
    # cores), which would also flatter every other backend in srx bench. A user's setting
    # wins (bench records it).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
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


def quiet_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-q",
        "--quiet",
        is_flag=True,
        help="No progress bars or stage notes (shown on a terminal only; never with --json -).",
    )(f)


MODEL_HELP = "What to run: a checkpoint, an srx ONNX, or an engine with its sidecar (built by srx build-engine)."
OUTSCALE_HELP = (
    "Final size as a multiple of the input's (default: the model's scale); the model's output is resampled "
    "with Lanczos."
)


def _backend_names() -> str:
    from srx.runtime.registry import backend_names

    return ", ".join(backend_names())


BACKEND_HELP = f"auto (the fastest exact one that can run here), or one of: {_backend_names()}."
BACKENDS_HELP = f"Comma-separated backends, or 'all' (default: the set for --device): {_backend_names()}."


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


def _warn(message: str) -> None:
    click.echo(f"srx: warning: {message}", err=True)


def _check_writable_outputs(*pairs: tuple[str, str | None]) -> None:
    """Refuse unwritable output paths (option, path) before the work, not after it."""
    from srx.fileio import check_writable

    for option, path in pairs:
        if path not in (None, "-"):
            check_writable(path, option)


def _require_gpu(option: str, instead: str) -> None:
    from srx.runtime.device import NO_GPU, has_cuda

    if not has_cuda():
        raise BadInput(f"{option}: {NO_GPU}; {instead}")


def _check_json_path(json_path: str | None) -> None:
    _check_writable_outputs(("--json", json_path))


def parse_scale(value: int | None) -> int | None:
    if value is not None and value not in (2, 3, 4):
        raise BadInput(f"--scale {value} is not supported: use 2, 3 or 4")
    return value


# -- commands ------------------------------------------------------------------------------


@cli.command(short_help="What a checkpoint, ONNX or engine holds.")
@click.argument("file", type=str)
@click.option("--param-key", default=None, help="Checkpoint entry to read (default: params, as BasicSR).")
@click.option("--scale", type=int, default=None, help="For a shipped network (default, team15): its scale (default 4).")
@json_option
def info(file: str, param_key: str | None, scale: int | None, json_path: str | None) -> None:
    """Show what a checkpoint, ONNX model or engine holds."""
    from srx.inspect import describe, format_description

    _check_json_path(json_path)
    d = describe(file, param_key=param_key, scale=parse_scale(scale))
    human(format_description(d), json_path)
    emit_json(d, json_path)


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
    help=f"Run the network with this backend (default: PyTorch for checkpoints, auto for files): {_backend_names()}.",
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
    from srx.evaluate import evaluate, format_result

    if model is not None and weights is not None:
        raise BadInput("give either --model or --weights, not both")
    _check_json_path(json_path)
    progress = Progress.for_terminal(quiet=quiet, json_path=json_path)
    result = evaluate(
        dataset,
        weights or model or "bicubic",
        parse_scale(scale),
        param_key=param_key,
        backend=backend,
        progress=progress,
    )
    human(format_result(result), json_path)
    emit_json(result.to_dict(), json_path)


@cli.command(short_help="Latency, memory, accuracy per backend.")
@click.option("--input", "input_size", default="320x180", show_default=True, help="LR input size WIDTHxHEIGHT.")
@click.option(
    "--weights",
    default=None,
    metavar="CKPT|NAME",
    help="Checkpoint, or a shipped network: default, seeded (untrained), team15 (default: default, the paper SAFMN).",
)
@click.option("--model", "model_file", default=None, metavar="CKPT|ONNX|ENGINE", help=MODEL_HELP)
@click.option("--scale", type=int, default=None, help="Scale of the embedded default model (2, 3, 4; default 4).")
@click.option("--param-key", default=None, help="Checkpoint entry to read (default: params).")
@click.option("--backends", default=None, metavar="LIST", help=BACKENDS_HELP)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: cuda when a GPU is visible.")
@click.option("--runs", type=int, default=None, help="Timed runs per backend (default 50 on CUDA, 10 on CPU).")
@click.option("--warmup", type=int, default=None, help="Untimed runs first (default 10 on CUDA, 1 on CPU).")
@click.option("--images", default=None, help="Folder of images to use as inputs (cropped to --input).")
@click.option(
    "--threads", type=int, default=None, help="CPU threads for torch, onnxruntime and OpenVINO (default: all)."
)
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
@quiet_option
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
    quiet: bool,
    video: str | None,
    codec: str | None,
    crf: int | None,
    preset: str | None,
    json_path: str | None,
) -> None:
    """Latency, peak memory and accuracy of every backend, against the FP32 PyTorch output."""
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
        progress = Progress.for_terminal(quiet=quiet, json_path=json_path)
        _bench_video(video, model, {"codec": codec, "crf": crf, "preset": preset}, progress, json_path)
        return
    if codec is not None or crf is not None or preset is not None:
        raise BadInput("--codec, --crf and --preset apply to --video")
    from pathlib import Path

    from srx.bench.engine import BenchConfig, run_bench
    from srx.bench.report import load_result
    from srx.runtime.registry import engine_mismatch, parse_backends
    from srx.runtime.source import ModelSource
    from srx.sizes import parse_size

    size = parse_size(input_size, what="--input")
    parse_scale(scale)
    names = parse_backends(backends) if backends is not None else None
    cfg = BenchConfig(size.height, size.width, device, names, runs, warmup, images, seed, threads,
                      batch=batch, profile=profile, compile_mode=compile_mode)  # fmt: skip
    if images is not None and not Path(images).is_dir():
        raise BadInput(f"--images {images} is not a folder: give a folder of images")
    old = load_result(compare_path) if compare_path else None
    _check_writable_outputs(("--json", json_path), ("--plot", plot_path))
    if device == "cuda":
        _require_gpu("--device cuda", "use --device cpu")
    progress = Progress.for_terminal(quiet=quiet, json_path=json_path)

    def bars(what: str, total: int) -> Any:
        return progress.bar(f"{what:<17}", total, "run")

    with ModelSource.from_options(weights, model_file, scale, param_key) as source:
        for name in names or []:
            if engine_mismatch(name, source):  # asked for by name: refused as upscale and eval refuse it
                raise BadInput(f"--backends {name}: {engine_mismatch(name, source)}")
        result = run_bench(source, cfg, progress=bars, command=["srx", *sys.argv[1:]])
    _report_bench(result, old, compare_path, json_path, plot_path, source.origin, names or [])


def _report_bench(
    result: dict[str, Any],
    old: dict[str, Any] | None,
    compare_path: str | None,
    json_path: str | None,
    plot_path: str | None,
    origin: str,
    requested: list[str],
) -> None:
    from srx.bench.report import compare, format_compare, format_table

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
        # One or two backends asked for by name: their reasons fit in the line itself.
        why = "; ".join(f"{r['backend']}: {r['reason']}" for r in result["results"] if r["backend"] in requested)
        raise BadInput(
            f"no backend can run {origin} on {result['device']['kind']} here ("
            + (why if why and len(requested) <= 2 else "reasons in the table above")
            + "): install what a row asks for, or choose another --model, --backends or --device"
        )
    failed = [r["backend"] for r in result["results"] if r["status"] == "failed"]
    if failed:
        raise SrxError(f"backend(s) failed: {', '.join(failed)} (reasons in the table above)")


def _bench_video(
    video: str, model: tuple[Any, ...], encoder: dict[str, Any], progress: Progress, json_path: str | None
) -> None:
    """srx bench --video FILE (srx.video.bench, issue 15)."""
    from srx.video.bench import format_video_bench
    from srx.video.command import bench_command

    _check_json_path(json_path)
    result = bench_command(video, *model, encoder=encoder, progress=progress, command=["srx", *sys.argv[1:]])
    human(format_video_bench(result), json_path)
    emit_json(result, json_path)
    if all(r["status"] == "skipped" for r in result["results"]):
        raise BadInput("no backend can run here (reasons above): install what a row asks for, or choose --backends")
    failed = [r["backend"] for r in result["results"] if r["status"] == "failed"]
    if failed:
        raise SrxError(f"backend(s) failed: {', '.join(failed)} (reasons above)")


TILE_HELP = (
    "Tile side in input pixels: bounds memory, costs time (each tile also computes the model's reach, 136 pixels "
    "for the x4 paper SAFMN, on every inner side). Default (or 0): whole images up to 1 MP, 512 above; -1: never tile."
)


@cli.command(short_help="Upscale image files or folders.")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "out", required=True, help="Output file (one input) or folder (created if missing).")
@click.option(
    "--weights",
    default=None,
    metavar="CKPT|NAME",
    help="Checkpoint, or a shipped network: default, seeded, team15 (default: the best shipped one; x4: team15).",
)
@click.option("--model", "model_file", default=None, metavar="CKPT|ONNX|ENGINE", help=MODEL_HELP)
@click.option("--scale", type=int, default=None, help="Scale of the embedded default model (2, 3, 4; default 4).")
@click.option("--param-key", default=None, help="Checkpoint entry to read (default: params).")
@click.option("--tile", type=int, default=None, metavar="N", help=TILE_HELP)
@click.option("--tile-overlap", type=int, default=None, help="Context around each tile (default: the model's reach).")
@click.option("--backend", default="auto", show_default=True, metavar="NAME", help=BACKEND_HELP)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: cuda when a GPU is visible.")
@click.option("--outscale", type=float, default=None, metavar="F", help=OUTSCALE_HELP)
@click.option("--suffix", default="", help="Added to each output name in a folder: photo.png -> photo<SUFFIX>.png.")
@click.option("--ext", type=click.Choice(["png", "jpg", "webp"]), default=None, help="Output format in a folder.")
@click.option("--quality", type=int, default=95, show_default=True, help="JPEG and WebP quality, 1-100.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (default: refuse them before any work).")
@click.option("--skip-existing", is_flag=True, help="Leave existing outputs alone and skip their inputs.")
@click.option(
    "--codec", default=None, help="Videos: codec or encoder (default: the input's, else H.264; docs/video.md)."
)
@click.option("--crf", type=int, default=None, help="Videos: constant quality, lower is better (default: x264 18).")
@click.option("--batch", type=int, default=1, show_default=True, help="Videos: frames per model call.")
@click.option("--start", type=float, default=None, metavar="SECONDS", help="Videos: start of the clip to upscale.")
@click.option("--duration", type=float, default=None, metavar="SECONDS", help="Videos: length of the clip.")
@click.option("--preset", default=None, help="Videos: encoder speed preset (x264 / x265: ultrafast .. veryslow).")
@quiet_option
@json_option
def upscale(
    inputs: tuple[str, ...],
    out: str,
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
    quiet: bool,
    json_path: str | None,
    **options: Any,
) -> None:
    """Upscale PNG / JPEG / WebP files or folders (alpha, 16-bit and EXIF orientation kept), or videos."""
    from srx.runtime.device import has_cuda
    from srx.runtime.registry import get_backend
    from srx.tiling import check_tile_options
    from srx.upscale import OutputOptions
    from srx.video.command import VideoOptions, clip_options, is_video_run

    model = {k: options.pop(k) for k in ("weights", "model_file", "scale", "param_key")}
    if options["overwrite"] and options["skip_existing"]:
        raise BadInput("give --overwrite or --skip-existing, not both")
    output = OutputOptions(**options)
    parse_scale(model["scale"])
    if backend != "auto":
        get_backend(backend)
    _check_json_path(json_path)
    check_tile_options(None, tile, tile_overlap)
    video = VideoOptions(codec, crf, batch, clip_options(start, duration), tile, tile_overlap, preset)
    progress = Progress.for_terminal(quiet=quiet, json_path=json_path)
    run = (model, backend, device or ("cuda" if has_cuda() else "cpu"), progress, json_path)
    if is_video_run(inputs):
        _upscale_videos(list(inputs), out, video, output, *run)
    elif video != VideoOptions(tile=tile, overlap=tile_overlap):
        raise BadInput(
            "--codec, --crf, --preset, --batch, --start and --duration apply to videos; these inputs are images"
        )
    else:
        _upscale_images(list(inputs), out, tile, tile_overlap, output, *run)


def _upscale_images(
    inputs: list[str],
    out: str,
    tile: int | None,
    tile_overlap: int | None,
    output: Any,
    model: dict[str, Any],
    backend: str,
    dev: str,
    progress: Progress,
    json_path: str | None,
) -> None:
    from srx.runtime.registry import auto_backend, open_runner
    from srx.tiling import check_tile_options
    from srx.upscale import format_result, output_folder, plan_jobs, upscale_files

    plan = plan_jobs(inputs, out, output)
    skipped = [str(j.src) for j in plan.skipped]
    if not plan.jobs:
        human(f"nothing to do: every output exists already ({len(skipped)}; --skip-existing)", json_path)
        emit_json({"outputs": [], "failed": [], "skipped": skipped}, json_path)
        return
    with _upscale_source(model) as source:
        check_tile_options(source.spec, tile, tile_overlap)
        _upscale_warnings(source, tile, tile_overlap, default=model["weights"] is None and model["model_file"] is None)
        name = auto_backend(source, dev) if backend == "auto" else backend

        def on_error(path: Any, message: str) -> None:
            click.echo(f"srx: error: {message}", err=True)

        with output_folder(plan.jobs), open_runner(name, source, dev) as runner:
            result = upscale_files(
                plan.jobs, runner.run, source.spec, tile=tile or None, overlap=tile_overlap, on_error=on_error,
                progress=progress, output=output,
            )  # fmt: skip
        result.update({"backend": name, "device": dev, "model": source.spec.label, "skipped": skipped})
        result["untrained"] = not source.spec.trained
    human(format_result(result), json_path)
    emit_json(result, json_path)
    if result["failed"]:
        n, total = len(result["failed"]), len(plan.jobs)
        if n == total:
            raise BadInput(f"none of the {total} inputs could be upscaled (reasons above): fix or remove them")
        raise BadInput(f"{n} of {total} input(s) could not be upscaled (listed above); the others were written")


def _upscale_source(model: dict[str, Any]) -> Any:
    """Without --weights or --model: the shipped network with the best score, named in the output."""
    from srx.runtime.source import ModelSource

    return ModelSource.from_options(
        model["weights"], model["model_file"], model["scale"], model["param_key"], default="best"
    )


def _upscale_warnings(source: Any, tile: int | None, tile_overlap: int | None, *, default: bool) -> None:
    """What a user must know before the work starts: an untrained model, tiles that are mostly context."""
    from srx.tiling import context_warning

    spec = source.spec
    if not spec.trained and default:
        _warn(
            f"no trained model given: the embedded default ({spec.title} x{spec.scale}) is UNTRAINED and its output "
            "is noise, for latency tests only; pass --weights CKPT (or --model) to upscale for real"
        )
    elif not spec.trained:
        _warn(
            f"{source.origin} is an UNTRAINED model (exported from srx's embedded default?) and its output is noise; "
            "upscale with a trained checkpoint or its export"
        )
    if context_warning(spec, tile, tile_overlap):
        _warn(context_warning(spec, tile, tile_overlap))


def _upscale_videos(
    inputs: list[str],
    out: str,
    video: Any,
    output: Any,
    model: dict[str, Any],
    backend: str,
    dev: str,
    progress: Progress,
    json_path: str | None,
) -> None:
    """srx upscale on video files (srx.video.command, issue 15)."""
    from srx.runtime.registry import auto_backend
    from srx.video.avlib import require_av
    from srx.video.command import upscale_command

    require_av()  # before the model loads: a missing PyAV is the first thing to say
    with _upscale_source(model) as source:
        _upscale_warnings(
            source, video.tile, video.overlap, default=model["weights"] is None and model["model_file"] is None
        )
        name = auto_backend(source, dev) if backend == "auto" else backend
        text, result = upscale_command(
            inputs, out, source, name, dev, video, output=output, progress=progress, echo=_warn_line
        )
    human(text, json_path)
    emit_json(result, json_path)
    if result.get("summary_error"):
        raise BadInput(result["summary_error"])


def _warn_line(message: str) -> None:
    click.echo(message, err=True)


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
    _check_writable_outputs(("-o", output), ("--json", json_path))
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
        from srx.serve.repository import write_model_repository

        result["triton_repo"] = write_model_repository(output, triton_repo)
        text += "\n" + _format_repo(result["triton_repo"])
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
    quiet: bool,
    json_path: str | None,
) -> None:
    """Explicit INT8 Q/DQ ONNX for TensorRT, calibrated on a folder of images."""
    from srx.precision.int8 import QuantSettings, format_report, quantize_file

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
    progress = Progress.for_terminal(quiet=quiet, json_path=json_path)
    r = quantize_file(
        model, calib_dir, output, settings=settings, max_psnr_drop=max_psnr_drop, progress=progress, warn=_warn
    )
    human(format_report(r), json_path)
    emit_json(r, json_path)


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
    from srx.engines.build import engine_from_onnx, format_report

    _check_json_path(json_path)
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
        warn=_warn,
        **options,
    )
    human(format_report(r), json_path)
    emit_json(r, json_path)


# -- serving on Triton Inference Server (issue 17) ---------------------------------------------


def _format_repo(r: dict[str, Any]) -> str:
    batching = (
        f"dynamic batching up to {r['max_batch_size']} (queue delay {r['max_queue_delay_us']} us)"
        if r["dynamic_batching"]
        else f"max_batch_size {r['max_batch_size']}"
    )
    accel = f", {r['accelerator']} accelerator" if r["accelerator"] != "none" else ""
    lines = [
        f"wrote Triton model {r['model']} version {r['version']}: {r['config']}",
        f"  backend     {r['backend']}{accel}, {r['instance_group']['count']} x KIND_{r['instance_group']['kind'].upper()}",
        f"  batching    {batching}",
        f"  run         tritonserver --model-repository={r['repository']}",
    ]
    lines += [f"  note        {n}" for n in r["notes"]]
    return "\n".join(lines)


@cli.command("serve-config", short_help="Triton model repository entry for a model.")
@click.argument("model", type=str)
@click.option("-o", "--output", "repo", required=True, metavar="DIR", help="Model repository folder (created if new).")
@click.option("--name", default=None, help="Model name (default: the file's name).")
@click.option("--model-version", "version", type=int, default=1, show_default=True, help="Version folder.")
@click.option("--max-batch", type=int, default=None, help="max_batch_size (default 8; a plan: its profile's largest).")
@click.option(
    "--max-queue-delay-us", "queue_delay", type=int, default=None, help="Dynamic batching delay (default 1000)."
)
@click.option(
    "--instances", type=int, default=1, show_default=True, help="Instances per device (instance_group count)."
)
@click.option("--kind", type=click.Choice(["gpu", "cpu"]), default="gpu", show_default=True, help="Instance kind.")
@click.option(
    "--accelerator",
    type=click.Choice(["cuda", "tensorrt", "none"]),
    default=None,
    help="ONNX on the GPU: onnxruntime's CUDA (default) or TensorRT execution accelerator.",
)
@click.option("--min", "min_size", default=None, metavar="WxH", help="--accelerator tensorrt: smallest input.")
@click.option("--opt", "opt_size", default=None, metavar="WxH", help="--accelerator tensorrt: input to tune for.")
@click.option("--max", "max_size", default=None, metavar="WxH", help="--accelerator tensorrt: largest input.")
@json_option
def serve_config(
    model: str,
    repo: str,
    name: str | None,
    version: int,
    max_batch: int | None,
    queue_delay: int | None,
    instances: int,
    kind: str,
    accelerator: str | None,
    min_size: str | None,
    opt_size: str | None,
    max_size: str | None,
    json_path: str | None,
) -> None:
    """Write a Triton model repository entry (config.pbtxt + model) for an srx ONNX or engine."""
    from srx.serve.repository import DEFAULT_QUEUE_DELAY_US, RepoOptions, write_model_repository

    _check_json_path(json_path)
    options = RepoOptions(
        name=name,
        version=version,
        max_batch=max_batch,
        queue_delay_us=DEFAULT_QUEUE_DELAY_US if queue_delay is None else queue_delay,
        instances=instances,
        kind=kind,
        accelerator=accelerator,
        trt_min=min_size,
        trt_opt=opt_size,
        trt_max=max_size,
    )
    r = write_model_repository(model, repo, options)
    human(_format_repo(r), json_path)
    emit_json(r, json_path)


@cli.command(short_help="Serve a model on Triton (PyTriton).")
@click.option(
    "--weights",
    default=None,
    metavar="CKPT",
    help="Checkpoint, or a shipped network: default, seeded, team15 (default: default).",
)
@click.option("--model", "model_file", default=None, metavar="ONNX|ENGINE", help="Exported model to serve.")
@click.option("--scale", type=int, default=None, help="Scale of the embedded default model (2, 3, 4; default 4).")
@click.option("--param-key", default=None, help="Checkpoint entry to read (default: params).")
@click.option("--backend", default="auto", show_default=True, metavar="NAME", help=BACKEND_HELP)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: cuda when a GPU is visible.")
@click.option("--name", default=None, help="Model name (default: the file's name, or e.g. safmn_x4).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--http-port", type=int, default=8000, show_default=True)
@click.option("--grpc-port", type=int, default=8001, show_default=True)
@click.option("--metrics-port", type=int, default=8002, show_default=True)
@click.option("--max-batch", type=int, default=8, show_default=True, help="Largest batch the dynamic batcher forms.")
@click.option(
    "--max-queue-delay-us", "queue_delay", type=int, default=1000, show_default=True, help="Dynamic batching delay."
)
@click.option("--instances", type=int, default=1, show_default=True, help="Model instances (and runners).")
@click.option("--max-size", default="1920x1080", show_default=True, metavar="WxH", help="Largest input image.")
@click.option(
    "--grace-period",
    type=float,
    default=30.0,
    show_default=True,
    metavar="S",
    help="On Ctrl-C / SIGTERM, seconds to answer the requests in flight before stopping.",
)
@click.option("--allow-nonfinite", is_flag=True, help="Pass NaN and infinite FP32 inputs to the model (refused: 400).")
def serve(
    weights: str | None,
    model_file: str | None,
    scale: int | None,
    param_key: str | None,
    backend: str,
    device: str | None,
    name: str | None,
    host: str,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    max_batch: int,
    queue_delay: int,
    instances: int,
    max_size: str,
    grace_period: float,
    allow_nonfinite: bool,
) -> None:
    """Serve a model on a Triton Inference Server (PyTriton) until Ctrl-C: HTTP, gRPC, metrics."""
    from srx.runtime.device import has_cuda
    from srx.runtime.registry import auto_backend, get_backend
    from srx.runtime.source import ModelSource
    from srx.serve.server import ServeOptions, check_options, format_ready, log_to_stderr
    from srx.serve.server import serve as run_server
    from srx.sizes import parse_size

    parse_scale(scale)
    if backend != "auto":
        get_backend(backend)
    options = ServeOptions(
        name=name,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        max_batch=max_batch,
        queue_delay_us=queue_delay,
        instances=instances,
        max_size=parse_size(max_size, what="--max-size"),
        grace_period=grace_period,
        allow_nonfinite=allow_nonfinite,
    )
    check_options(options)  # before loading the model
    log_to_stderr(debug=_debug_requested(sys.argv[1:]))
    dev = device or ("cuda" if has_cuda() else "cpu")

    def ready(info: dict[str, Any]) -> None:
        click.echo(format_ready(info))
        sys.stdout.flush()

    with ModelSource.from_options(weights, model_file, scale, param_key) as source:
        chosen = auto_backend(source, dev, varied_shapes=True) if backend == "auto" else backend
        try:
            run_server(source, chosen, dev, options, ready, warn=lambda m: click.echo(f"srx: warning: {m}", err=True))
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM after a full drain: exit 0
            how = f" by {signal.Signals(e.signum).name}" if isinstance(e, Interrupted) else ""
            click.echo(f"srx serve: stopped{how}; every request in flight was answered", err=True)


# -- training (issue 14): the command lives with the training code ---------------------------

from srx.train.command import train as _train_command  # noqa: E402  (registered after the group exists)

cli.add_command(_train_command)
