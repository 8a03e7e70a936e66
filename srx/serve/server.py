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
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srx.errors import BadInput, SrxError, first_line
from srx.runtime.source import ModelSource
from srx.serve.env import check_port_free, free_loopback_port, stub_library_path
from srx.serve.gate import Gate, GateConfig, body_limit
from srx.serve.handler import DTYPES, INPUT, OUTPUT, Handler, Limits, RunnerPool
from srx.serve.repository import DEFAULT_MAX_BATCH, DEFAULT_QUEUE_DELAY_US, model_name_from
from srx.serve.shutdown import Leftovers, Watchdog, drain, reap
from srx.sizes import Size
from srx.spec import ModelSpec

# Endpoints PyTriton 0.7 protects by default, less statistics (read-only counters).
PROTECTED_ENDPOINTS = ["shared-memory", "model-repository", "trace", "logging"]
DEFAULT_MAX_SIZE = Size(1920, 1080)
# How long tritonserver waits, once srx has drained it, for client connections to close (idle
# keep-alive ones too) before it exits anyway: the drain (--grace-period) has answered every request.
EXIT_TIMEOUT_S = 3
DEFAULT_GRACE_PERIOD_S = 30.0
# Beyond the grace period and the exit timeout: PyTriton's stop and reaping, before the watchdog acts.
WATCHDOG_MARGIN_S = 30.0
# How long reaping waits for the server's processes to end by themselves before it kills them.
REAP_WAIT_S = 5.0


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
    grace_period: float = DEFAULT_GRACE_PERIOD_S
    allow_nonfinite: bool = False


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
    if not 0 <= o.grace_period <= 3600:
        raise BadInput(f"--grace-period {o.grace_period:g}: give seconds between 0 and 3600")
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
    dies (SrxError). On a signal it drains (srx.serve.shutdown) and raises the KeyboardInterrupt
    again when every request in flight was answered, SrxError when the grace period cut the drain
    short. Everything started is stopped before this returns or raises."""
    from srx.runtime.registry import open_runner

    check_options(options)
    name = default_name(source, options.name)
    path, warning = stub_library_path(os.environ.get("LD_LIBRARY_PATH"))
    if warning:
        warn(warning)
    if path is not None:
        os.environ["LD_LIBRARY_PATH"] = path  # inherited by tritonserver and its stubs
    # A missing PyTriton ends as srx.cli's one line with the install hint (srx.errors).
    from pytriton.triton import Triton, TritonLifecyclePolicy, TritonSecurityConfig

    with contextlib.ExitStack() as stack:
        runners = [
            stack.enter_context(open_runner(backend, source, device, **runner_options(backend)))
            for _ in range(options.instances)
        ]
        pool = RunnerPool(runners)
        limits = Limits(
            max_pixels=options.max_size.width * options.max_size.height, allow_nonfinite=options.allow_nonfinite
        )
        models = {name: "float32", f"{name}_uint8": "uint8"}
        handlers = {m: Handler(pool, source.spec, dtype, limits) for m, dtype in models.items()}
        warm_up(handlers[name], source.spec, len(runners))  # before Triton: ready means it runs
        private_http = free_loopback_port()
        triton = Triton(
            config=_triton_config(options, private_http),
            security_config=TritonSecurityConfig(restricted_endpoints=PROTECTED_ENDPOINTS),
            # Models in the repository tritonserver starts with: it opens its ports only once
            # they are loaded, so /v2/health/ready never answers for a server without them.
            triton_lifecycle_policy=TritonLifecyclePolicy(launch_triton_on_startup=True, local_model_store=True),
        )
        # PyTriton removes its workspace only when it stopped a server it started: a failure
        # between here and run() would leave it. Private to PyTriton 0.7 (pinned), as below.
        left = Leftovers(workspaces={Path(triton._workspace.model_store_path).parent})
        # The drain, tritonserver's exit timeout, PyTriton's own waits, and a margin for reaping.
        watchdog = Watchdog(left, options.grace_period + EXIT_TIMEOUT_S + WATCHDOG_MARGIN_S)
        stack.callback(watchdog.cancel)  # very last: once everything has stopped
        signal_handlers: dict[int, Any] = {}  # srx's own, while a stop replaces them
        stack.callback(_restore_signals, signal_handlers)
        stack.callback(_reap_and_report, left, warn)  # last: after PyTriton's stop
        stack.callback(triton.stop)  # stops tritonserver and its stubs, removes PyTriton's workspace
        stack.callback(left.record, os.getpid())  # also when stopped while starting
        for model_name, dtype in models.items():
            _bind(triton, model_name, dtype, handlers[model_name], source, backend, options, warn)
        try:
            triton.run()
        except Exception as e:  # PyTriton raises its own types, with the server log elsewhere
            raise SrxError(f"the Triton server did not start: {type(e).__name__}: {first_line(e, 200)}") from e
        left.record(os.getpid())
        gate = Gate(_gate_config(options, source.spec, private_http))
        try:
            gate.start()
        except OSError as e:
            raise SrxError(f"cannot listen on {options.host}:{options.http_port} ({e.strerror or e})") from e
        stack.callback(gate.stop)  # first: no new connection while the rest stops
        on_ready(ready_info(models, backend, device, options, source.spec))
        try:
            while triton.is_alive():
                time.sleep(0.5)  # Ctrl-C and SIGTERM arrive here as an exception
        except KeyboardInterrupt as stop:
            _stop_gracefully(triton, models, options, left, stop, private_http, watchdog, signal_handlers)
        raise SrxError("the Triton server stopped by itself: its log is above; run again with --debug for more")


def _stop_gracefully(
    triton: Any,
    models: dict[str, str],
    options: ServeOptions,
    left: Leftovers,
    stop: BaseException,
    port: int,
    watchdog: Watchdog,
    signal_handlers: dict[int, Any],
):
    """Drain (srx.serve.shutdown), then let serve()'s exit stack stop PyTriton and reap; a watchdog
    ends the process if that hangs. Raises `stop` again after a full drain, else SrxError."""
    left.record(os.getpid())
    _detach_pytriton_stop(triton)
    cut_short = threading.Event()
    # Until everything has stopped, a further signal only cuts the drain short: raised inside
    # PyTriton's stop or the reaping, it would leave the very processes this stop is for.
    signal_handlers.update({s: signal.signal(s, lambda *_: cut_short.set()) for s in (signal.SIGINT, signal.SIGTERM)})
    watchdog.start()  # ends the process if the drain or the stop after it hangs
    unload, states = _repository_calls(triton, options, port)
    drained = drain(unload, states, models, options.grace_period, cut_short)
    if drained:
        raise stop
    how = (
        "a second signal" if cut_short.is_set() else f"the grace period of {options.grace_period:g} s (--grace-period)"
    )
    raise SrxError(f"stopped by {_signal_name(stop)}, but {how} ended it before every request in flight was answered")


def _restore_signals(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def _detach_pytriton_stop(triton: Any) -> None:
    """PyTriton stops tritonserver as soon as a model's srx side reports it is closing, which the
    unloading does: that cut the drain off within a second. Private to PyTriton 0.7 (pinned)."""
    for model in triton._model_manager.models:
        with model._observers_lock:
            model._model_events_observers.clear()


def _signal_name(stop: BaseException) -> str:
    signum = getattr(stop, "signum", signal.SIGINT)
    return signal.Signals(signum).name


def _repository_calls(
    triton: Any, options: ServeOptions, port: int
) -> tuple[Callable[[str], None], Callable[[], dict[str, str]]]:
    """Unload a model, and every model's state, through Triton's repository API (behind PyTriton's
    token). Plain urllib: the drain calls these from several threads at once, which tritonclient's
    gevent-based HTTP client does not allow."""
    import json
    import urllib.request

    from pytriton.triton import TRITON_ACCESS_HEADER

    base = f"http://127.0.0.1:{port}/v2/repository"  # tritonserver's own port, behind the gate
    headers = {TRITON_ACCESS_HEADER: triton.get_access_token(), "Content-Type": "application/json"}
    # An unload may be answered only once the model is unloaded: never give up before the drain does.
    timeout = options.grace_period + EXIT_TIMEOUT_S

    def post(path: str, wait_s: float) -> bytes:
        request = urllib.request.Request(f"{base}/{path}", data=b"{}", headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=wait_s) as r:
            return r.read()

    def unload(name: str) -> None:
        post(f"models/{name}/unload", timeout)

    def states() -> dict[str, str]:
        return {m["name"]: m.get("state", "") for m in json.loads(post("index", 10))}

    return unload, states


def _reap_and_report(left: Leftovers, warn: Callable[[str], None]) -> None:
    done = reap(left, REAP_WAIT_S)
    if done:
        warn(f"the server left processes or files behind; srx cleaned up: {'; '.join(done)}")


def _gate_config(options: ServeOptions, spec: ModelSpec, upstream_port: int) -> GateConfig:
    w, h = options.max_size.width, options.max_size.height
    return GateConfig(
        host=options.host,
        port=options.http_port,
        upstream_port=upstream_port,
        max_body=body_limit(options.max_batch, spec.in_channels, w, h),
        hint=f"--max-batch {options.max_batch} images of --max-size {w}x{h}, FP32",
        max_pixels=w * h,
    )


def _triton_config(options: ServeOptions, http_port: int) -> Any:
    from pytriton.triton import TritonConfig

    return TritonConfig(
        # HTTP on loopback only: clients reach it through srx.serve.gate on --host:--http-port.
        http_address="127.0.0.1",
        http_port=http_port,
        grpc_address=options.host,
        grpc_port=options.grpc_port,
        metrics_address=options.host,
        metrics_port=options.metrics_port,
        exit_timeout_secs=EXIT_TIMEOUT_S,
        strict_readiness=True,
    )


def _bind(
    triton: Any,
    model_name: str,
    dtype: str,
    handler: Handler,
    source: ModelSource,
    backend: str,
    options: ServeOptions,
    warn: Callable[[str], None],
) -> None:
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

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
    params = {
        **spec_parameters(source, backend, dtype),
        "srx.max_pixels": str(options.max_size.width * options.max_size.height),
        "srx.allow_nonfinite": "true" if options.allow_nonfinite else "false",
    }
    _install_model(triton, model_name, params, warn)


def warm_up(handler: Handler, spec: ModelSpec, runners: int) -> None:
    """One inference of the smallest image on every runner, through the request path, before the
    server opens: a model that cannot run ends srx serve here instead of answering errors."""
    import numpy as np

    side = max(spec.min_size, spec.size_multiple, 1)
    x = np.full((1, spec.in_channels, side, side), 0.5, np.float32)
    for _ in range(runners):  # the pool lends its runners in turn
        try:
            (out,) = handler([{INPUT: x}])
        except Exception as e:
            raise SrxError(f"the model failed its warm-up inference ({type(e).__name__}: {first_line(e)})") from e
        if not np.isfinite(out[OUTPUT]).all():
            raise SrxError("the model's warm-up inference gave NaN or infinite values: check the model file")


def ready_info(
    models: dict[str, str], backend: str, device: str, options: ServeOptions, spec: ModelSpec
) -> dict[str, Any]:
    return {
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
        "grace_period": options.grace_period,
        "spec": spec.to_dict(),
    }


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
        f"  Ctrl-C stops the server (answering the requests in flight for up to {info['grace_period']:g} s)"
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


def _install_model(triton: Any, model_name: str, params: dict[str, str], warn: Callable[[str], None]) -> None:
    """Put `params` into the model configuration Triton serves (GET /v2/models/NAME/config), and
    srx's model.py (srx.serve.stub_model) beside PyTriton's in the model repository.

    PyTriton has no public way to do either: this edits the configuration it builds for a bound
    model and writes the model's folder again. Private to PyTriton 0.7 (pinned by the `serve`
    extra); without it the size limits and error answers would not hold, so srx stops instead."""
    try:
        model = next(m for m in triton._model_manager.models if m.model_name == model_name)
        model._get_triton_model_config().backend_parameters.update(params)
        store = Path(triton._workspace.model_store_path)
        model.generate_model(store)
        version = store / model_name / str(model.model_version)
        (version / "model.py").replace(version / "pytriton_model.py")
        shutil.copyfile(Path(__file__).with_name("stub_model.py"), version / "model.py")
    except (AttributeError, StopIteration, TypeError, OSError) as e:
        raise SrxError(
            f"this PyTriton does not let srx install its request checks ({type(e).__name__}: {first_line(e)}): "
            "install nvidia-pytriton 0.7 (pip install 'srx[serve]')"
        ) from e
