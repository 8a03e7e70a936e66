"""`srx serve` for real: a Triton server started by PyTriton on the CPU, 8 concurrent tritonclient
clients, bad requests, health, metrics, statistics, Ctrl-C (issue 17's acceptance).

The server runs in the serving environment (.venv-serve, see serve_env.py); this process is
the client and runs the same runner in-process for the reference outputs. The tests in this
file share one server, in file order; the last one stops it with SIGINT.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from onnx_models import write_onnx
from serve_env import Server, alive, cmdline, descendants, run_serve_python

from srx.images import quantize
from srx.runtime.registry import open_runner
from srx.runtime.source import ModelSource
from srx.serve import loadtest
from srx.serve.server import runner_options

http = pytest.importorskip("tritonclient.http", reason="pip install 'srx[triton-client]'")
grpc = pytest.importorskip("tritonclient.grpc", reason="pip install 'srx[triton-client]'")
from tritonclient.utils import InferenceServerException  # noqa: E402

NAME = "tiny"
MAX_SIZE = (64, 48)  # --max-size, small so that "too large" is cheap to send
SIZE = (40, 24)  # W, H of the load-test images (not multiples of 8: SAFMN's uneven pooling)


@pytest.fixture(scope="module")
def onnx(tmp_path_factory) -> Path:
    # A small model (dim 8, 1 block) makes each request a few ms on 2 cores: seconds of load
    # give hundreds of requests, and the batcher something to batch.
    return write_onnx(tmp_path_factory.mktemp("model"), "safmn", f"{NAME}.onnx", n_blocks=1)


@pytest.fixture(scope="module")
def server(onnx, tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("serve"), "--model", str(onnx), "--max-size", "x".join(map(str, MAX_SIZE)))
    try:
        s.wait_ready([NAME, f"{NAME}_uint8"])
        yield s
    finally:
        s.kill_group()


@pytest.fixture(scope="module")
def run(onnx):
    """The server's runner, in this process: the reference every response must equal."""
    with ModelSource.from_file(onnx) as source:
        r = open_runner("onnxruntime", source, "cpu", **runner_options("onnxruntime"))
        with r:
            yield r.run


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    return loadtest.make_inputs(SIZE[1], SIZE[0], n, "float32", seed=seed)


def send(url: str, model: str, x: np.ndarray) -> np.ndarray:
    client = http.InferenceServerClient(url)
    try:
        return loadtest.infer(client, "http", model, x, 60)
    finally:
        client.close()


def test_eight_clients_get_exact_answers_and_requests_are_batched(server, run):
    inputs = images(4)
    expected = loadtest.reference(run, inputs)
    phase = loadtest.run_clients(server.url, NAME, inputs, expected, clients=8, seconds=4)
    r = phase.to_dict()
    assert r["errors"] == 0, r["error_messages"]
    assert r["mismatches"] == 0 and r["max_abs_diff"] <= 1e-5, r
    assert r["ok"] >= 16, f"only {r['ok']} requests in 4 s: {r}"
    srv = r["server"]
    # Triton's own statistics: every image inferred, and in fewer executions than images.
    assert srv["images"] == r["ok"]
    assert max(srv["executions_per_batch_size"]) > 1, srv
    assert srv["mean_batch"] > 1.0, srv


def test_grpc_clients_too(server, run):
    inputs = images(2, seed=10)
    url = f"127.0.0.1:{server.grpc}"
    phase = loadtest.run_clients(
        url, NAME, inputs, loadtest.reference(run, inputs), clients=4, seconds=2, protocol="grpc"
    )
    assert phase.errors == 0 and phase.mismatches == 0 and len(phase.latencies_ms) >= 8, phase.to_dict()


def test_uint8_model(server, run):
    x = loadtest.make_inputs(SIZE[1], SIZE[0], 1, "uint8", seed=3)[0]
    y = send(server.url, f"{NAME}_uint8", x)
    assert y.dtype == np.uint8
    ref = quantize(run(x.astype(np.float32) / 255.0), 8)
    assert np.abs(y.astype(int) - ref.astype(int)).max() <= 1
    assert (y == ref).mean() > 0.999


BAD = [
    ("wrong rank", NAME, np.zeros((3, 16, 16), np.float32), "unexpected shape"),
    ("wrong channels", NAME, np.zeros((1, 4, 16, 16), np.float32), "unexpected shape"),
    ("wrong dtype", NAME, np.zeros((1, 3, 16, 16), np.float64), "expects 'FP32'"),
    ("int to uint8 model", f"{NAME}_uint8", np.zeros((1, 3, 16, 16), np.int32), "expects 'UINT8'"),
    ("below the minimum", NAME, np.zeros((1, 3, 4, 4), np.float32), "smaller than this model's minimum of 8x8"),
    ("too large", NAME, np.zeros((1, 3, 64, 96), np.float32), "larger than this server accepts"),
    # Empty tensors: Triton refuses a batch of 0; a zero height is refused by srx in Triton's stub
    # (srx.serve.stub_model), before PyTriton's transport, which would fail on it.
    ("empty batch", NAME, np.zeros((0, 3, 16, 16), np.float32), "byte size mismatch"),
    ("empty image", NAME, np.zeros((1, 3, 0, 0), np.float32), "is empty (shape [1, 3, 0, 0])"),
]


def _send_raw(url: str, model: str, x: np.ndarray) -> str:
    """Send `x` as it is (its own data type) and return the error text; fail if it was accepted."""
    from tritonclient.utils import np_to_triton_dtype

    client = http.InferenceServerClient(url)
    try:
        inp = http.InferInput("lr", list(x.shape), np_to_triton_dtype(x.dtype))
        inp.set_data_from_numpy(x)
        client.infer(model, [inp])
    except InferenceServerException as e:
        return str(e)
    finally:
        client.close()
    pytest.fail(f"the server accepted {x.dtype} {list(x.shape)}")


@pytest.mark.parametrize(("what", "model", "x", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_request_gets_an_error_and_the_server_keeps_serving(server, run, what, model, x, message):
    text = _send_raw(server.url, model, x)
    assert message in text, text
    good = images(1, seed=20)[0]
    assert np.abs(send(server.url, NAME, good) - run(good)).max() <= 1e-5


def test_bad_requests_during_load_fail_no_good_one(server, run):
    inputs = images(2, seed=30)
    result: dict = {}
    t = threading.Thread(
        target=lambda: result.setdefault(
            "phase",
            loadtest.run_clients(server.url, NAME, inputs, loadtest.reference(run, inputs), clients=4, seconds=3),
        )
    )
    t.start()
    errors = [_send_raw(server.url, m, x) for _ in range(3) for _, m, x, _ in BAD]
    t.join()
    phase = result["phase"]
    assert phase.errors == 0 and phase.mismatches == 0 and phase.latencies_ms, phase.to_dict()
    assert len(errors) == 3 * len(BAD)


def test_health_config_and_metrics(server, onnx):
    client = http.InferenceServerClient(server.url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(NAME) and client.is_model_ready(f"{NAME}_uint8")
    cfg = client.get_model_config(NAME)
    assert cfg["max_batch_size"] == 8 and "dynamic_batching" in cfg
    params = {k: v["string_value"] for k, v in cfg["parameters"].items()}
    spec = ModelSource.from_file(onnx).spec
    assert json.loads(params["srx.spec"]) == json.loads(spec.to_json())
    assert params["srx.min_size"] == str(spec.min_size) and params["srx.scale"] == "4"
    client.close()
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    counted = re.search(rf'nv_inference_count{{model="{NAME}",version="1"}} (\d+)', metrics)
    assert counted and int(counted.group(1)) > 0, metrics[:2000]


def test_loadtest_command(server, onnx):
    """`python -m srx.serve.loadtest` as a user runs it, in the serving environment."""
    proc = run_serve_python(
        "-m",
        "srx.serve.loadtest",
        "--url",
        server.url,
        "--model",
        str(onnx),
        "--input",
        "x".join(map(str, SIZE)),
        "--clients",
        "1,2",
        "--seconds",
        "1",
        "--json",
        "-",
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert [p["clients"] for p in r["phases"]] == [1, 2]
    assert all(p["errors"] == 0 and p["mismatches"] == 0 and p["ok"] > 0 for p in r["phases"])
    assert r["overhead"]["inprocess_p50_ms"] > 0 and "latency_overhead_p50_ms" in r["overhead"]
    assert "serving overhead at 1 client" in proc.stderr  # the table, on stderr beside --json -


def test_loadtest_names_a_model_the_server_does_not_have(server, onnx):
    from conftest import assert_one_line_error

    proc = run_serve_python(
        "-m", "srx.serve.loadtest", "--url", server.url, "--model", str(onnx), "--model-name", "nope", "--seconds", "1"
    )
    assert "has no ready model 'nope'" in assert_one_line_error(proc, 2)


def test_port_in_use_is_one_line(server, onnx, tmp_path):
    from conftest import assert_one_line_error

    proc = run_serve_python("-m", "srx", "serve", "--model", str(onnx), "--http-port", str(server.http))
    line = assert_one_line_error(proc, 2)
    assert f"--http-port {server.http}: the port is in use" in line


def test_ctrl_c_stops_everything(server):
    """Last in this file: SIGINT stops tritonserver, its Python stubs and their helpers, and
    removes PyTriton's workspace and shared memory; srx serve exits 0."""
    pid = server.proc.pid
    below = descendants(pid)
    assert below, "srx serve has no child processes: is it PyTriton's server?"
    triton = [p for p in below if Path(cmdline(p)[0]).name == "tritonserver"]
    assert triton, [cmdline(p)[0] for p in below]
    args = cmdline(triton[0])
    workspace = Path(args[args.index("--model-repository") + 1]).parent
    prefix = next(a.split("=", 1)[1] for a in args if a.startswith("python,shm-region-prefix-name="))
    assert workspace.is_dir() and any(p.name.startswith(prefix) for p in Path("/dev/shm").iterdir())
    stub_dirs = {
        Path(cmdline(p)[1]).parent.parent for p in below if cmdline(p)[0].endswith("triton_python_backend_stub")
    }
    # A client that keeps its connection open, as load balancers do: tritonserver waits for it
    # until its exit timeout, then exits without unloading its models; srx removes what that leaves.
    idle = http.InferenceServerClient(server.url)
    assert idle.is_server_live()

    code = server.stop(signal.SIGINT)
    idle.close()

    assert code == 0, server.stderr()[-2000:]
    assert "srx serve: stopped by SIGINT" in server.stderr()
    assert "Traceback" not in server.stderr()
    # multiprocessing's resource tracker (PyTriton's shared memory) ends when the last process
    # holding its pipe has exited: moments after srx serve itself.
    deadline = time.monotonic() + 10
    while [p for p in below if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in below if alive(p)]
    assert not left, [cmdline(p) for p in left]
    assert "leaked" not in server.stderr(), server.stderr()[-2000:]
    assert not workspace.exists()
    assert not [p.name for p in Path("/dev/shm").iterdir() if p.name.startswith(prefix)]
    assert stub_dirs and not [d for d in stub_dirs if d.exists()]


def test_sigterm_stops_it_too(onnx, tmp_path):
    """docker stop and Kubernetes send SIGTERM: the same clean stop, exit 0."""
    s = Server(tmp_path, "--model", str(onnx))
    try:
        s.wait_ready([NAME, f"{NAME}_uint8"])
        below = descendants(s.proc.pid)
        assert s.stop(signal.SIGTERM) == 0, s.stderr()[-2000:]
        assert "srx serve: stopped by SIGTERM" in s.stderr()
        deadline = time.monotonic() + 10
        while [p for p in below if alive(p)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in below if alive(p)]
    finally:
        s.kill_group()


def test_a_crashed_tritonserver_ends_srx_serve_in_one_line(onnx, tmp_path):
    s = Server(tmp_path, "--model", str(onnx))
    try:
        s.wait_ready([NAME, f"{NAME}_uint8"])  # serving, not loading
        below = descendants(s.proc.pid)
        (triton,) = [p for p in below if Path(cmdline(p)[0]).name == "tritonserver"]
        os.kill(triton, signal.SIGKILL)
        assert s.proc.wait(60) == 1
        lines = [ln for ln in s.stderr().splitlines() if ln.startswith("srx: error:")]
        assert lines == [
            "srx: error: the Triton server stopped by itself: its log is above; run again with --debug for more"
        ]
        assert "Traceback" not in s.stderr()
        deadline = time.monotonic() + 10
        while [p for p in below if alive(p)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [cmdline(p) for p in below if alive(p)]
    finally:
        s.kill_group()
