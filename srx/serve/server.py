"""`srx serve`: an srx model behind a real Triton Inference Server, started in-process by PyTriton.

PyTriton (the `serve` extra) runs tritonserver as a child process with its Python backend; each
model instance's requests come back into this process, where `srx.serve.handler.Handler` runs
them on srx runners. Two models are served:

    NAME        lr FP32 [N, 3, H, W] in [0, 1]  ->  sr FP32 [N, 3, sH, sW]   (as the ONNX / plan repositories)
    NAME_uint8  lr UINT8 [N, 3, H, W]           ->  sr UINT8 [N, 3, sH, sW]

both with dynamic batching (requests of one size are batched together) and `instances` Triton
instances, all sharing `instances` runners; HTTP and gRPC inference, health and readiness
(/v2/health/live, /v2/health/ready), per-model statistics (/v2/models/NAME/stats) and Prometheus
metrics (:METRICS_PORT/metrics). The model configuration carries the ModelSpec in `parameters`,
as `srx serve-config` writes it.

PyTriton protects some endpoints with a token it generates; srx keeps that for model loading
and unloading, shared memory, tracing and logging, and opens statistics, which only count.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srx.errors import BadInput, SrxError, first_line
from srx.runtime.source import ModelSource
from srx.serve.env import check_port_free, model_folders, stub_library_path
from srx.serve.handler import DTYPES, INPUT, OUTPUT, Handler, Limits, RunnerPool
from srx.serve.repository import DEFAULT_MAX_BATCH, DEFAULT_QUEUE_DELAY_US, model_name_from
from srx.sizes import Size
from srx.spec import ModelSpec

# Endpoints PyTriton 0.7 protects by default, less statistics (read-only counters).
PROTECTED_ENDPOINTS = ["shared-memory", "model-repository", "trace", "logging"]
DEFAULT_MAX_SIZE = Size(1920, 1080)
# How long tritonserver gives open connections, requests in flight and unloading when it stops.
EXIT_TIMEOUT_S = 10


@dataclass(frozen=True)
class ServeOptions:
    name: str | None = None
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch: int = DEFAULT_MAX_BATCH
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    instances: int = 1
    max_size: Size = DEFAULT_MAX_SIZE


def runner_options(backend: str) -> dict[str, Any]:
    """Options of the runners a server opens (and the load test's in-process reference, so that
    both run the same runner). onnxruntime: one session for every input size, where srx bench
    makes one per size: a server sees many sizes, and a new session costs more than it saves."""
    return {"specialize": False} if backend in ("onnxruntime", "onnxruntime-cuda") else {}


def check_options(o: ServeOptions) -> None:
    if o.max_batch < 1:
        raise BadInput(f"--max-batch {o.max_batch}: use 1 or more")
    if o.instances < 1:
        raise BadInput(f"--instances {o.instances}: use 1 or more")
    if o.queue_delay_us < 0:
        raise BadInput(f"--max-queue-delay-us {o.queue_delay_us}: cannot be negative; use 0 or more")
    ports = {"--http-port": o.http_port, "--grpc-port": o.grpc_port, "--metrics-port": o.metrics_port}
    if len(set(ports.values())) < 3:
        raise BadInput(f"the ports must differ ({', '.join(f'{k} {v}' for k, v in ports.items())}): choose three")
    for option, port in ports.items():
        check_port_free(o.host, port, option)


def serve(
    source: ModelSource,
    backend: str,
    device: str,
    options: ServeOptions,
    on_ready: Callable[[dict[str, Any]], None],
    *,
    warn: Callable[[str], None],
) -> None:
    """Serve `source` until Ctrl-C / SIGTERM (raised here as KeyboardInterrupt) or until the server
    dies (SrxError). Everything started is stopped before this returns or raises."""
    from srx.runtime.registry import open_runner

    check_options(options)
    name = default_name(source, options.name)
    path, warning = stub_library_path(os.environ.get("LD_LIBRARY_PATH"))
    if warning:
        warn(warning)
    if path is not None:
        os.environ["LD_LIBRARY_PATH"] = path  # inherited by tritonserver and its stubs
    # A missing PyTriton ends as srx.cli's one line with the install hint (srx.errors).
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    with contextlib.ExitStack() as stack:
        runners = [
            stack.enter_context(open_runner(backend, source, device, **runner_options(backend)))
            for _ in range(options.instances)
        ]
        pool = RunnerPool(runners)
        limits = Limits(max_pixels=options.max_size.width * options.max_size.height)
        config = TritonConfig(
            http_address=options.host,
            http_port=options.http_port,
            grpc_address=options.host,
            grpc_port=options.grpc_port,
            metrics_address=options.host,
            metrics_port=options.metrics_port,
            exit_timeout_secs=EXIT_TIMEOUT_S,
        )
        triton = Triton(config=config, security_config=TritonSecurityConfig(restricted_endpoints=PROTECTED_ENDPOINTS))
        models = {name: "float32", f"{name}_uint8": "uint8"}
        folders: set[Path] = set()
        stack.callback(_remove_folders, folders)  # runs after triton.stop (callbacks run last first)
        stack.callback(triton.stop)  # stops tritonserver and its stubs, removes PyTriton's workspace
        stack.callback(lambda: folders.update(model_folders(os.getpid())))  # also when stopped while loading
        for model_name, dtype in models.items():
            handler = Handler(pool, source.spec, dtype, limits)
            triton.bind(
                model_name=model_name,
                infer_func=[handler] * options.instances,
                inputs=[Tensor(name=INPUT, dtype=DTYPES[dtype], shape=(source.spec.in_channels, -1, -1))],
                outputs=[Tensor(name=OUTPUT, dtype=DTYPES[dtype], shape=(3, -1, -1))],
                config=ModelConfig(
                    max_batch_size=options.max_batch,
                    batcher=DynamicBatcher(max_queue_delay_microseconds=options.queue_delay_us),
                ),
                strict=True,
            )
            _publish_parameters(triton, model_name, spec_parameters(source, backend, dtype), warn)
        try:
            triton.run()
        except Exception as e:  # PyTriton raises its own types, with the server log elsewhere
            raise SrxError(f"the Triton server did not start: {type(e).__name__}: {first_line(e, 200)}") from e
        on_ready(
            {
                "models": list(models),
                "backend": backend,
                "device": device,
                "http": f"http://{options.host}:{options.http_port}",
                "grpc": f"{options.host}:{options.grpc_port}",
                "metrics": f"http://{options.host}:{options.metrics_port}/metrics",
                "max_batch": options.max_batch,
                "max_queue_delay_us": options.queue_delay_us,
                "instances": options.instances,
                "max_size": str(options.max_size),
                "spec": source.spec.to_dict(),
            }
        )
        folders.update(model_folders(os.getpid()))
        while triton.is_alive():
            time.sleep(0.5)  # Ctrl-C and SIGTERM arrive here as an exception
        raise SrxError("the Triton server stopped by itself: its log is above; run again with --debug for more")


def _remove_folders(folders: set[Path]) -> None:
    """What a tritonserver that exited without unloading its models left in /tmp (srx.serve.env)."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def log_to_stderr(debug: bool) -> None:
    """The server's log lines on stderr: srx's one line per refused request; PyTriton's own
    (a warning with a traceback for every failed request) with --debug only."""
    logging.basicConfig(level=logging.INFO if debug else logging.WARNING, format="srx serve: %(message)s")
    if not debug:
        logging.getLogger("pytriton").setLevel(logging.ERROR)


def format_ready(info: dict[str, Any]) -> str:
    spec = info["spec"]
    label = ModelSpec.from_dict(spec).label
    return (
        f"serving {', '.join(info['models'])} ({label}) on {info['backend']} ({info['device']})\n"
        f"  http     {info['http']}    grpc {info['grpc']}    metrics {info['metrics']}\n"
        f"  batching up to {info['max_batch']}, queue delay {info['max_queue_delay_us']} us, "
        f"{info['instances']} instance(s); inputs {spec['min_size']}x{spec['min_size']} .. {info['max_size']}\n"
        "  Ctrl-C stops the server"
    )


def default_name(source: ModelSource, given: str | None = None) -> str:
    """--name, else the model's file name where there is one, else arch and scale (safmn_x4)."""
    if given is None and source.kind == "torch":
        given = f"{source.spec.arch.replace('-', '_')}_x{source.spec.scale}"
    return model_name_from(Path(source.origin), given)


def spec_parameters(source: ModelSource, backend: str, dtype: str) -> dict[str, str]:
    spec = source.spec
    return {
        "srx.spec": spec.to_json(),
        "srx.scale": str(spec.scale),
        "srx.min_size": str(spec.min_size),
        "srx.size_multiple": str(spec.size_multiple),
        "srx.value_range": "0,255" if dtype == "uint8" else ",".join(f"{v:g}" for v in spec.value_range),
        "srx.layout": "NCHW RGB",
        "srx.backend": backend,
    }


def _publish_parameters(triton: Any, model_name: str, params: dict[str, str], warn: Callable[[str], None]) -> None:
    """Put `params` into the model configuration Triton serves (GET /v2/models/NAME/config).

    PyTriton has no public way to add `parameters`: this edits the configuration it builds for a
    bound model, before `run()` sends it to Triton. Private to PyTriton 0.7 (pinned by the
    `serve` extra); a version without it serves the model without them, with a warning."""
    try:
        model = next(m for m in triton._model_manager.models if m.model_name == model_name)
        model._get_triton_model_config().backend_parameters.update(params)
    except (AttributeError, StopIteration, TypeError) as e:
        warn(f"this PyTriton does not let srx publish the model's scale and minimum size ({type(e).__name__})")
