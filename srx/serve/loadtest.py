"""Load test of a Triton server serving an srx model, against the same model in-process.

    python -m srx.serve.loadtest --model x4.onnx --clients 1,8 --seconds 10 --input 320x180

One client first, alternating with the same model in-process (the runner the server uses, in
this process): image by image, in-process then through the server, so the serving overhead is a
number (the median of the per-image differences) even on a machine whose load changes. Then, for
each larger client count, that many concurrent tritonclient clients (one thread and one
connection each) send images for T seconds. Every response is compared with the in-process
output for the same image (max |diff|, tolerance 1e-5 for FP32), and throughput, p50 / p90 / p99
latency, errors and the batches the server formed (Triton's statistics) are reported.

Latency is the host clock around one blocking request, as a client sees it. Requests and
duration are bounded; the test sends only to the URL given (a local server by default).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NoReturn

import click
import numpy as np

from srx.errors import BadInput, SrxError

DEFAULT_TOLERANCE = 1e-5
WIRE_DTYPES = {"float32": "FP32", "uint8": "UINT8"}


def percentiles(ms: Sequence[float]) -> dict[str, float | None]:
    if not ms:
        return {"p50": None, "p90": None, "p99": None, "mean": None}
    a = np.asarray(ms)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(a.mean())}


def server_message(e: BaseException) -> str:
    """The line of a server error that says what was wrong (PyTriton wraps it in tracebacks)."""
    text = str(e).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "RequestError:" in ln:
            return ln.split("RequestError:", 1)[1].strip()
    for ln in reversed(lines):
        if not ln.startswith(("At:", "/", "File ", "^", "~")) and ":" in ln:
            return ln
    return lines[0] if lines else type(e).__name__


# -- clients -----------------------------------------------------------------------------------


def make_client(url: str, protocol: str, timeout_s: float) -> Any:
    """A tritonclient client for one thread (the HTTP client is not thread-safe)."""
    if protocol == "http":
        import tritonclient.http as http

        return http.InferenceServerClient(url, connection_timeout=timeout_s, network_timeout=timeout_s)
    if protocol == "grpc":
        import tritonclient.grpc as grpc

        return grpc.InferenceServerClient(url)
    raise BadInput(f"--protocol {protocol!r}: choose http or grpc")


def infer(client: Any, protocol: str, model: str, x: np.ndarray, timeout_s: float) -> np.ndarray:
    """One request: `x` as input 'lr' (FP32 or UINT8), the 'sr' output back."""
    if protocol == "http":
        import tritonclient.http as mod

        inp = mod.InferInput("lr", list(x.shape), WIRE_DTYPES[str(x.dtype)])
        inp.set_data_from_numpy(x, binary_data=True)
        result = client.infer(model, [inp], outputs=[mod.InferRequestedOutput("sr", binary_data=True)])
    else:
        import tritonclient.grpc as mod

        inp = mod.InferInput("lr", list(x.shape), WIRE_DTYPES[str(x.dtype)])
        inp.set_data_from_numpy(x)
        result = client.infer(model, [inp], client_timeout=timeout_s)
    return result.as_numpy("sr")


def check_server(url: str, protocol: str, model: str, timeout_s: float = 10.0) -> None:
    """BadInput unless a Triton server answers at `url` and serves `model`."""
    try:
        client = make_client(url, protocol, timeout_s)
    except Exception as e:  # a malformed URL
        raise BadInput(f"--url {url}: {server_message(e)}; give host:port") from e
    try:
        try:
            live = client.is_server_live()
        except Exception as e:  # refused, unreachable, timed out
            raise BadInput(
                f"no Triton server answers at {url} ({protocol}): {server_message(e)}; start srx serve or check --url"
            ) from e
        if not live or not client.is_model_ready(model):
            raise BadInput(
                f"the server at {url} has no ready model {model!r}: check --model-name (or wait for it to load)"
            )
    finally:
        client.close()


def model_statistics(client: Any, protocol: str, model: str) -> dict[str, Any]:
    """Counts from Triton's statistics extension: inferences (images), executions (batches run)
    and executions per batch size."""
    if protocol == "http":
        stats = client.get_inference_statistics(model)
    else:
        stats = client.get_inference_statistics(model, as_json=True)
    m = stats["model_stats"][0]
    batches = {int(b["batch_size"]): int(b["compute_infer"]["count"]) for b in m.get("batch_stats", [])}
    return {
        "inference_count": int(m.get("inference_count", 0)),
        "execution_count": int(m.get("execution_count", 0)),
        "batches": batches,
    }


def stats_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    batches = {
        k: after["batches"].get(k, 0) - before["batches"].get(k, 0)
        for k in sorted(after["batches"])
        if after["batches"].get(k, 0) - before["batches"].get(k, 0) > 0
    }
    images = after["inference_count"] - before["inference_count"]
    runs = after["execution_count"] - before["execution_count"]
    return {
        "images": images,
        "executions": runs,
        "mean_batch": images / runs if runs else None,
        "executions_per_batch_size": batches,
    }


# -- phases ------------------------------------------------------------------------------------


@dataclass
class Phase:
    """What N clients saw during one run."""

    clients: int
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    images: int = 0
    errors: int = 0
    error_messages: dict[str, int] = field(default_factory=dict)
    mismatches: int = 0
    max_abs_diff: float = 0.0
    server: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        n = len(self.latencies_ms)
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 3),
            "requests": n + self.errors,
            "ok": n,
            "errors": self.errors,
            "error_messages": self.error_messages,
            "mismatches": self.mismatches,
            "max_abs_diff": self.max_abs_diff,
            "images_per_s": self.images / self.seconds if self.seconds else None,
            "requests_per_s": n / self.seconds if self.seconds else None,
            "latency_ms": percentiles(self.latencies_ms),
            "server": self.server,
        }


def run_clients(
    url: str,
    model: str,
    inputs: Sequence[np.ndarray],
    expected: Sequence[np.ndarray] | None,
    *,
    clients: int,
    seconds: float,
    protocol: str = "http",
    tolerance: float = DEFAULT_TOLERANCE,
    timeout_s: float = 60.0,
    max_requests: int = 100_000,
) -> Phase:
    """`clients` threads, each with its own connection, send `inputs` in turn for `seconds`
    (at most `max_requests` in all) and check every answer against `expected`."""
    if clients < 1 or seconds <= 0:
        raise BadInput("a load test needs at least 1 client and a positive duration")
    phase = Phase(clients)
    lock = threading.Lock()
    sent = 0
    stats_client = make_client(url, protocol, timeout_s)
    before = model_statistics(stats_client, protocol, model)
    start = time.perf_counter()
    deadline = start + seconds

    def worker(k: int) -> None:
        nonlocal sent
        client = make_client(url, protocol, timeout_s)
        try:
            i = k
            while time.perf_counter() < deadline:
                with lock:
                    if sent >= max_requests:
                        return
                    sent += 1
                x = inputs[i % len(inputs)]
                t0 = time.perf_counter()
                try:
                    y = infer(client, protocol, model, x, timeout_s)
                except Exception as e:  # tritonclient's InferenceServerException, socket errors
                    msg = server_message(e)[:300]
                    with lock:
                        phase.errors += 1
                        phase.error_messages[msg] = phase.error_messages.get(msg, 0) + 1
                    i += 1
                    continue
                ms = (time.perf_counter() - t0) * 1000.0
                diff = _diff(y, expected[i % len(expected)]) if expected is not None else 0.0
                with lock:
                    phase.latencies_ms.append(ms)
                    phase.images += x.shape[0]
                    phase.max_abs_diff = max(phase.max_abs_diff, diff)
                    if not diff <= tolerance:  # NaN counts as a mismatch
                        phase.mismatches += 1
                i += 1
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=clients) as pool:
        for f in [pool.submit(worker, k) for k in range(clients)]:
            f.result()
    phase.seconds = time.perf_counter() - start
    phase.server = stats_delta(before, model_statistics(stats_client, protocol, model))
    stats_client.close()
    return phase


def _diff(y: np.ndarray, ref: np.ndarray) -> float:
    if y.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(y.astype(np.float64) - ref.astype(np.float64)))) if y.size else 0.0


def run_paired(
    run: Callable[[np.ndarray], np.ndarray],
    url: str,
    model: str,
    inputs: Sequence[np.ndarray],
    expected: Sequence[np.ndarray] | None,
    *,
    seconds: float,
    protocol: str = "http",
    tolerance: float = DEFAULT_TOLERANCE,
    timeout_s: float = 60.0,
) -> tuple[Phase, Phase]:
    """One client: each image in-process, then through the server, in turn for `seconds`; returns
    (in-process, server). Each pair sees the machine in the same state, so on a machine shared
    with other work their difference is the serving overhead, not a change of load between phases."""
    inproc, served = Phase(0), Phase(1)
    client = make_client(url, protocol, timeout_s)
    to_model = [x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x for x in inputs]
    try:
        run(to_model[0])  # warm-up on both sides (first-run allocations), not measured
        infer(client, protocol, model, inputs[0], timeout_s)
        before = model_statistics(client, protocol, model)
        start = time.perf_counter()
        i = 0
        while i < len(inputs) or time.perf_counter() - start < seconds:
            k = i % len(inputs)
            i += 1
            t0 = time.perf_counter()
            run(to_model[k])
            t1 = time.perf_counter()
            try:
                y = infer(client, protocol, model, inputs[k], timeout_s)
            except Exception as e:  # tritonclient's InferenceServerException, socket errors
                msg = server_message(e)[:300]
                served.errors += 1
                served.error_messages[msg] = served.error_messages.get(msg, 0) + 1
                continue
            t2 = time.perf_counter()
            inproc.latencies_ms.append((t1 - t0) * 1000.0)
            served.latencies_ms.append((t2 - t1) * 1000.0)
            inproc.images += inputs[k].shape[0]
            served.images += inputs[k].shape[0]
            diff = _diff(y, expected[k]) if expected is not None else 0.0
            served.max_abs_diff = max(served.max_abs_diff, diff)
            if not diff <= tolerance:  # NaN counts as a mismatch
                served.mismatches += 1
        # Each side had the machine for its own share of the time.
        inproc.seconds = sum(inproc.latencies_ms) / 1000.0
        served.seconds = sum(served.latencies_ms) / 1000.0
        served.server = stats_delta(before, model_statistics(client, protocol, model))
    finally:
        client.close()
    return inproc, served


def make_inputs(height: int, width: int, count: int, dtype: str, seed: int = 0) -> list[np.ndarray]:
    """`count` distinct natural-looking images, batch 1, FP32 in [0, 1] or UINT8."""
    from srx.synthetic import natural_image

    out = []
    for k in range(count):
        x = natural_image(height, width, batch=1, seed=seed + k).astype(np.float32)
        out.append(np.rint(x * 255).astype(np.uint8) if dtype == "uint8" else x)
    return out


def reference(run: Callable[[np.ndarray], np.ndarray], inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """What the server must answer: the in-process output, converted as srx.serve.handler does."""
    from srx.images import quantize

    out = []
    for x in inputs:
        if x.dtype == np.uint8:
            out.append(quantize(run(x.astype(np.float32) / 255.0), 8))
        else:
            out.append(run(x))
    return out


def overhead(inproc: Phase, phases: Sequence[Phase]) -> dict[str, Any]:
    """The latency overhead from the paired phase (median over images of server minus in-process),
    and each phase's throughput against in-process throughput."""
    rate = inproc.images / inproc.seconds if inproc.seconds else None
    out: dict[str, Any] = {"inprocess_p50_ms": percentiles(inproc.latencies_ms)["p50"], "inprocess_images_per_s": rate}
    paired = next((p for p in phases if p.clients == 1), None)
    if paired is not None and paired.latencies_ms and len(paired.latencies_ms) == len(inproc.latencies_ms):
        diffs = [s - i for s, i in zip(paired.latencies_ms, inproc.latencies_ms, strict=True)]
        out["latency_overhead_p50_ms"] = statistics.median(diffs)
    for p in phases:
        if rate and p.seconds:
            out[f"throughput_vs_inprocess_{p.clients}_clients"] = (p.images / p.seconds) / rate
    return out


def format_report(result: dict[str, Any]) -> str:
    inproc = result["inprocess"]
    lat = inproc["latency_ms"]
    lines = [
        f"load test of {result['model']} at {result['url']} ({result['protocol']}), input {result['input']} "
        f"{result['dtype']}, {result['distinct_inputs']} distinct images",
        f"  in-process   {result['backend']}: p50 {lat['p50']:.1f} ms, {inproc['images_per_s']:.2f} images/s "
        f"({inproc['ok']} runs)",
        "  clients  requests  errors  mismatches  max|diff|  images/s   p50 ms   p90 ms   p99 ms  mean batch",
    ]
    for p in result["phases"]:
        q = p["latency_ms"]
        srv = p["server"] or {}
        mb = srv.get("mean_batch")
        lines.append(
            f"  {p['clients']:>7}  {p['requests']:>8}  {p['errors']:>6}  {p['mismatches']:>10}  {p['max_abs_diff']:>9.1e}"
            f"  {_f(p['images_per_s'], 8, 2)}  {_f(q['p50'], 7, 1)}  {_f(q['p90'], 7, 1)}  {_f(q['p99'], 7, 1)}"
            f"  {_f(mb, 10, 2)}"
        )
        for msg, n in p["error_messages"].items():
            lines.append(f"           {n} x {msg}")
    o = result["overhead"]
    if o.get("latency_overhead_p50_ms") is not None:
        lines.append(f"  serving overhead at 1 client: {o['latency_overhead_p50_ms']:+.1f} ms p50")
    for p in result["phases"]:
        key = f"throughput_vs_inprocess_{p['clients']}_clients"
        if o.get(key) is not None:
            lines.append(f"  throughput with {p['clients']} client(s): {o[key]:.2f}x in-process")
    return "\n".join(lines)


def _f(v: float | None, width: int, digits: int) -> str:
    return f"{v:>{width}.{digits}f}" if v is not None else f"{'-':>{width}}"


# -- command line --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """`python -m srx.serve.loadtest`: one line on stderr and exit 2 for bad input, as srx (srx.program)."""
    from srx.program import debug_requested, exit_for

    args = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(args)
    args = [a for a in args if a != "--debug"]
    try:
        with command.make_context("python -m srx.serve.loadtest", args) as ctx:
            command.invoke(ctx)
    except (Exception, KeyboardInterrupt) as e:
        exit_for(e, debug, otherwise=_client_failure, interrupted="interrupted")


def _client_failure(e: BaseException, debug: bool) -> NoReturn:
    """A missing client package, the server going away mid-test, or what no check foresaw: one line."""
    from srx.program import fail

    if debug:
        traceback.print_exc()
    if isinstance(e, ModuleNotFoundError):
        fail(f"the load test needs the Python package '{e.name}': pip install 'srx[triton-client]'", 2)
    fail(f"{type(e).__name__}: {server_message(e)} (run again with --debug for the traceback)", 1)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--url", default=None, help="Server address host:port (default 127.0.0.1:8000, gRPC :8001).")
@click.option("--protocol", type=click.Choice(["http", "grpc"]), default="http", show_default=True)
@click.option("--model-name", default=None, help="Served model (default: as srx serve names --model/--weights).")
@click.option("--model", "model_file", default=None, metavar="ONNX|ENGINE", help="The file the server serves.")
@click.option("--weights", default=None, metavar="CKPT", help="The checkpoint the server serves.")
@click.option("--scale", type=int, default=None, help="Scale of the embedded default model.")
@click.option("--param-key", default=None)
@click.option("--backend", default="auto", show_default=True, help="In-process backend (the server's).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None)
@click.option("--input", "input_size", default="320x180", show_default=True, metavar="WxH")
@click.option("--dtype", type=click.Choice(["float32", "uint8"]), default="float32", show_default=True)
@click.option(
    "--clients",
    default="1,8",
    show_default=True,
    help="Client counts, one phase each (1: alternating with the in-process runs, which always happen).",
)
@click.option("--seconds", type=float, default=10.0, show_default=True, help="Duration of each phase.")
@click.option("--distinct", type=int, default=4, show_default=True, help="Distinct images sent in turn.")
@click.option("--tolerance", type=float, default=None, help="Max |diff| allowed (default 1e-5; uint8: 1 level).")
@click.option("--json", "json_path", default=None, metavar="PATH", help="Also write the results here ('-' = stdout).")
def command(
    url: str | None,
    protocol: str,
    model_name: str | None,
    model_file: str | None,
    weights: str | None,
    scale: int | None,
    param_key: str | None,
    backend: str,
    device: str | None,
    input_size: str,
    dtype: str,
    clients: str,
    seconds: float,
    distinct: int,
    tolerance: float | None,
    json_path: str | None,
) -> None:
    """Load-test an srx model served by Triton (srx serve or tritonserver) against it in-process."""
    from srx.program import emit_json, human
    from srx.runtime.device import has_cuda
    from srx.runtime.registry import auto_backend, open_runner
    from srx.runtime.source import ModelSource
    from srx.serve.server import default_name, runner_options
    from srx.sizes import parse_size

    size = parse_size(input_size, what="--input")
    try:
        counts = [int(c) for c in clients.split(",") if c.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise BadInput(f"--clients {clients!r}: give client counts such as 1,8")
    if seconds <= 0 or seconds > 3600:
        raise BadInput(f"--seconds {seconds:g}: give a duration between 0 and 3600 seconds")
    if distinct < 1:
        raise BadInput(f"--distinct {distinct}: use 1 or more")
    url = url or ("127.0.0.1:8000" if protocol == "http" else "127.0.0.1:8001")
    dev = device or ("cuda" if has_cuda() else "cpu")
    with ModelSource.from_options(weights, model_file, scale, param_key) as source:
        source.spec.check_input_size(size.height, size.width)
        name = model_name or default_name(source) + ("_uint8" if dtype == "uint8" else "")
        check_server(url, protocol, name)  # before minutes of work in-process
        chosen = auto_backend(source, dev, varied_shapes=True) if backend == "auto" else backend
        inputs = make_inputs(size.height, size.width, distinct, dtype)
        # uint8: the same float output on both sides can still round to neighbouring levels where
        # it lies on a .5 boundary and the two runs differ in the last bit.
        tol = tolerance if tolerance is not None else (1.0 if dtype == "uint8" else DEFAULT_TOLERANCE)
        with open_runner(chosen, source, dev, **runner_options(chosen)) as runner:
            expected = reference(runner.run, inputs)
            inproc, paired = run_paired(
                runner.run, url, name, inputs, expected, seconds=seconds, protocol=protocol, tolerance=tol
            )
    phases = [paired] if 1 in counts else []
    phases += [
        run_clients(url, name, inputs, expected, clients=n, seconds=seconds, protocol=protocol, tolerance=tol)
        for n in counts
        if n > 1
    ]
    result = {
        "url": url,
        "protocol": protocol,
        "model": name,
        "backend": chosen,
        "device": dev,
        "input": str(size),
        "dtype": dtype,
        "distinct_inputs": distinct,
        "tolerance": tol,
        "inprocess": inproc.to_dict(),
        "phases": [p.to_dict() for p in phases],
        "overhead": overhead(inproc, phases),
    }
    human(format_report(result), json_path)
    emit_json(result, json_path)
    bad = sum(p.errors + p.mismatches for p in phases)
    if bad:
        raise SrxError(f"{bad} request(s) failed or differed from the in-process output (listed above)")


if __name__ == "__main__":
    main()
