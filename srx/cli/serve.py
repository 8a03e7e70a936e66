"""`srx serve-config` (a Triton model repository entry) and `srx serve` (PyTriton)."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from srx.cli.group import cli
from srx.cli.options import (
    backend_option,
    check_json_path,
    default_device,
    device_option,
    json_option,
    model_options,
    model_ref,
    parse_scale,
)
from srx.cli.output import emit_json, human, warn
from srx.interrupt import Interrupted
from srx.program import debug_requested


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
    from srx.serve.repository import DEFAULT_QUEUE_DELAY_US, RepoOptions, format_written, write_model_repository

    check_json_path(json_path)
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
    human(format_written(r), json_path)
    emit_json(r, json_path)


@cli.command(short_help="Serve a model on Triton (PyTriton).")
@model_options(
    "CKPT",
    "Checkpoint, or a shipped network: default, seeded, team15 (default: default).",
    "ONNX|ENGINE",
    "Exported model to serve.",
)
@backend_option
@device_option
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
    max_size: str,
    queue_delay: int,
    **opts: Any,
) -> None:
    """Serve a model on a Triton Inference Server (PyTriton) until Ctrl-C: HTTP, gRPC, metrics."""
    from srx.runtime.registry import auto_backend, get_backend
    from srx.runtime.source import ModelSource
    from srx.serve.server import ServeOptions, check_options, format_ready, log_to_stderr
    from srx.serve.server import serve as run_server
    from srx.sizes import parse_size

    parse_scale(scale)
    if backend != "auto":
        get_backend(backend)
    options = ServeOptions(**opts, queue_delay_us=queue_delay, max_size=parse_size(max_size, what="--max-size"))
    check_options(options)  # before loading the model
    log_to_stderr(debug=debug_requested(sys.argv[1:]))
    dev = default_device(device)

    def ready(info: dict[str, Any]) -> None:
        click.echo(format_ready(info))
        sys.stdout.flush()

    with ModelSource.from_ref(model_ref(weights, model_file, scale, param_key)) as source:
        chosen = auto_backend(source, dev, varied_shapes=True) if backend == "auto" else backend
        try:
            run_server(source, chosen, dev, options, ready, warn=warn)
        except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM after a full drain: exit 0
            how = f" by {signal.Signals(e.signum).name}" if isinstance(e, Interrupted) else ""
            click.echo(f"srx serve: stopped{how}; every request in flight was answered", err=True)
