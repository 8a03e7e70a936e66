"""`srx bench`: latency, memory and accuracy per backend (srx.bench), or of the video pipeline (srx.video.bench)."""

from __future__ import annotations

import sys
from typing import Any

import click

from srx.cli.group import cli
from srx.cli.options import (
    BACKENDS_HELP,
    MODEL_HELP,
    check_json_path,
    check_writable_outputs,
    device_option,
    json_option,
    model_options,
    model_ref,
    parse_scale,
    quiet_option,
    require_gpu,
)
from srx.cli.output import emit_json, human, show
from srx.errors import BadInput
from srx.progress import Progress

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# Options that describe still-image inputs; --video brings its own frames.
IMAGE_ONLY = {"images": "--images", "plot_path": "--plot", "compare_path": "--compare", "profile": "--profile"}


@cli.command(short_help="Latency, memory, accuracy per backend.")
@click.option("--input", "input_size", default="320x180", show_default=True, help="LR input size WIDTHxHEIGHT.")
@model_options(
    "CKPT|NAME",
    "Checkpoint, or a shipped network: default, seeded (untrained), team15 (default: default, the paper SAFMN).",
    "CKPT|ONNX|ENGINE",
    MODEL_HELP,
)
@click.option("--backends", default=None, metavar="LIST", help=BACKENDS_HELP)
@device_option
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
@click.option(
    "--rounds",
    type=int,
    default=1,
    show_default=True,
    help="Time in N rounds, the backends taking turns (all loaded at once): a machine whose speed drifts "
    "slows every row alike.",
)
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
def bench(video: str | None, quiet: bool, json_path: str | None, **opts: Any) -> None:
    """Latency, peak memory and accuracy of every backend, against the FP32 PyTorch output."""
    progress = Progress.for_terminal(quiet=quiet, json_path=json_path)
    encoder = {k: opts.pop(k) for k in ("codec", "crf", "preset")}
    if video is not None:
        given = [flag for key, flag in IMAGE_ONLY.items() if opts[key] not in (None, False)]
        given += ["--rounds"] if opts["rounds"] != 1 else []
        if click.get_current_context().get_parameter_source("input_size") != click.core.ParameterSource.DEFAULT:
            given.append("--input")
        if given:
            raise BadInput(
                f"{', '.join(given)} cannot be combined with --video (the frames and their size are the video's)"
            )
        _bench_video(video, opts, encoder, progress, json_path)
    elif any(v is not None for v in encoder.values()):
        raise BadInput("--codec, --crf and --preset apply to --video")
    else:
        _bench_images(opts, progress, json_path)


def _bench_images(opts: dict[str, Any], progress: Progress, json_path: str | None) -> None:
    from pathlib import Path

    from srx.bench.engine import BenchConfig, run_bench
    from srx.bench.report import add_comparison, check_outcome, load_result
    from srx.runtime.registry import engine_mismatch, parse_backends
    from srx.runtime.source import ModelSource
    from srx.sizes import parse_size

    size = parse_size(opts["input_size"], what="--input")
    parse_scale(opts["scale"])
    names = parse_backends(opts["backends"]) if opts["backends"] is not None else None
    cfg = BenchConfig(size.height, size.width, opts["device"], names, opts["runs"], opts["warmup"], opts["images"],
                      opts["seed"], opts["threads"], batch=opts["batch"], profile=opts["profile"],
                      compile_mode=opts["compile_mode"], rounds=opts["rounds"])  # fmt: skip
    if opts["images"] is not None and not Path(opts["images"]).is_dir():
        raise BadInput(f"--images {opts['images']} is not a folder: give a folder of images")
    old = load_result(opts["compare_path"]) if opts["compare_path"] else None
    check_writable_outputs(("--json", json_path), ("--plot", opts["plot_path"]))
    if opts["device"] == "cuda":
        require_gpu("--device cuda", "use --device cpu")

    def bars(what: str, total: int) -> Any:
        return progress.bar(f"{what:<17}", total, "run")

    ref = model_ref(opts["weights"], opts["model_file"], opts["scale"], opts["param_key"])
    with ModelSource.from_ref(ref) as source:
        for name in names or []:
            if engine_mismatch(name, source):  # asked for by name: refused as upscale and eval refuse it
                raise BadInput(f"--backends {name}: {engine_mismatch(name, source)}")
        result = run_bench(source, cfg, progress=bars, command=["srx", *sys.argv[1:]])
    if old is not None:
        add_comparison(result, old, opts["compare_path"])
    show(result, json_path)
    if opts["plot_path"]:
        from srx.bench.plot import plot_result

        plot_result(result.to_json(), opts["plot_path"])
    check_outcome(result, source.origin, names or [])


def _bench_video(
    video: str, opts: dict[str, Any], encoder: dict[str, Any], progress: Progress, json_path: str | None
) -> None:
    """srx bench --video FILE (srx.video.bench, issue 15)."""
    from srx.bench.report import check_video_outcome
    from srx.video.bench import format_video_bench
    from srx.video.command import bench_command

    check_json_path(json_path)
    keys = ("weights", "model_file", "scale", "param_key", "backends", "device", "runs", "warmup", "threads", "batch")
    result = bench_command(
        video, *(opts[k] for k in keys), encoder=encoder, progress=progress, command=["srx", *sys.argv[1:]]
    )
    human(format_video_bench(result), json_path)
    emit_json(result, json_path)
    check_video_outcome(result)
