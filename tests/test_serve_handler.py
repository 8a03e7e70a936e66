"""What `srx serve` does with a batch of requests (srx.serve.handler), the libpython fix for
PyTriton's stub and the port check (srx.serve.env): no Triton server needed."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest
from onnx_models import natural_batch, write_onnx

from srx.errors import BadInput
from srx.images import quantize
from srx.runtime.registry import open_runner
from srx.runtime.source import ModelSource
from srx.serve import env
from srx.serve.handler import Handler, Limits, RequestError, RunnerPool, ServerFault, image_bytes
from srx.serve.server import runner_options

BIG = Limits(max_pixels=1 << 22, memory=lambda: None)


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    onnx = write_onnx(tmp_path_factory.mktemp("onnx"), "safmn", "tiny.onnx", n_blocks=1)
    with ModelSource.from_file(onnx) as source:
        r = open_runner("onnxruntime", source, "cpu", **runner_options("onnxruntime"))
        with r:
            yield r


def handler(runner, dtype="float32", limits=BIG, pool_size=1) -> Handler:
    return Handler(RunnerPool([runner] * pool_size), runner.spec, dtype, limits)


def test_batch_of_mixed_sizes_answers_each_request(runner):
    xs = [natural_batch(24, 32, seed=1), natural_batch(16, 20, batch=2, seed=2), natural_batch(24, 32, seed=3)]
    out = handler(runner)([{"lr": x} for x in xs])
    assert len(out) == 3
    for x, o in zip(xs, out, strict=True):
        assert o["sr"].shape == (x.shape[0], 3, x.shape[2] * 4, x.shape[3] * 4)
        assert np.abs(o["sr"] - runner.run(x)).max() <= 1e-5


def test_uint8_model_reads_and_writes_8_bit(runner):
    x = np.rint(natural_batch(16, 16, seed=4) * 255).astype(np.uint8)
    (o,) = handler(runner, "uint8")([{"lr": x}])
    assert o["sr"].dtype == np.uint8
    np.testing.assert_array_equal(o["sr"], quantize(runner.run(x.astype(np.float32) / 255.0), 8))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.zeros((1, 3, 4, 4), np.float32), "smaller than this model's minimum"),
        (np.zeros((1, 3, 0, 0), np.float32), "is empty"),
        (np.zeros((0, 3, 16, 16), np.float32), "is empty"),
        (np.zeros((1, 4, 16, 16), np.float32), "has 4 channels"),
        (np.zeros((3, 16, 16), np.float32), "4 dimensions"),
        (np.zeros((1, 3, 16, 16), np.float64), "is float64, this model takes float32"),
        (np.zeros((1, 3, 64, 64), np.float32), "larger than this server accepts"),
    ],
)
def test_bad_requests_are_refused_in_one_line(runner, x, message):
    h = handler(runner, limits=Limits(max_pixels=32 * 32, memory=lambda: None))
    with pytest.raises(RequestError, match=message) as e:
        h([{"lr": x}])
    assert "\n" not in str(e.value)


def test_nonfinite_input_is_refused_unless_allowed(runner):
    x = natural_batch(16, 16, seed=6)
    x[0, 0, 0, :3] = [np.nan, np.inf, -np.inf]
    with pytest.raises(RequestError, match=r"has 3 NaN or infinite value\(s\).*--allow-nonfinite"):
        handler(runner)([{"lr": x}])
    allowed = Limits(max_pixels=1 << 22, memory=lambda: None, allow_nonfinite=True)
    (o,) = handler(runner, limits=allowed)([{"lr": x}])
    assert o["sr"].shape == (1, 3, 64, 64)


def test_a_runner_failure_is_a_server_fault_with_a_request_id(runner, caplog):
    x = natural_batch(16, 16, seed=7)
    h = handler(runner)

    def broken(batch):
        raise RuntimeError("cannot read /srv/private/weights")

    runner.run = broken  # type: ignore[method-assign]
    try:
        with pytest.raises(ServerFault) as e, caplog.at_level("ERROR", logger="srx.serve"):
            h([{"lr": x}])
    finally:
        del runner.run
    message = str(e.value)
    assert message.startswith("internal error (request id ") and "/srv" not in message
    request_id = message.split("request id ", 1)[1].split(")")[0]
    (record,) = [r for r in caplog.records if request_id in r.getMessage()]
    assert record.exc_info and "cannot read /srv/private/weights" in str(record.exc_info[1])


def test_missing_input(runner):
    with pytest.raises(RequestError, match="no input 'lr'"):
        handler(runner)([{"image": np.zeros((1, 3, 16, 16), np.float32)}])


def test_batch_is_split_where_it_would_not_fit_in_memory(runner):
    x = natural_batch(16, 16, batch=4, seed=5)
    per = image_bytes(runner.spec, 16, 16)
    calls = []
    h = handler(runner, limits=Limits(max_pixels=1 << 20, memory=lambda: per * 2 + 1))
    real = runner.run

    def counting(batch):
        calls.append(batch.shape[0])
        return real(batch)

    runner.run = counting  # type: ignore[method-assign]
    try:
        (o,) = h([{"lr": x}])
    finally:
        del runner.run
    assert calls == [2, 2]
    assert np.abs(o["sr"] - real(x)).max() <= 1e-5
    with pytest.raises(RequestError, match="more than the"):
        handler(runner, limits=Limits(max_pixels=1 << 20, memory=lambda: per // 2))([{"lr": x}])


def test_pool_lends_each_runner_to_one_call_at_a_time():
    pool = RunnerPool(["a", "b"])  # type: ignore[list-item]
    held, most = [], [0]
    lock = threading.Lock()
    gate = threading.Barrier(4)

    def use():
        gate.wait()
        with pool.borrow() as r:
            with lock:
                held.append(r)
                most[0] = max(most[0], len(held))
                assert held.count(r) == 1
            threading.Event().wait(0.05)
            with lock:
                held.remove(r)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 2


# -- srx.serve.env ---------------------------------------------------------------------------------


def test_stub_gets_this_interpreters_libpython_first(monkeypatch, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "libpython3.11.so.1.0").write_bytes(b"")
    values = {"Py_ENABLE_SHARED": 1, "LIBDIR": str(lib), "INSTSONAME": "libpython3.11.so.1.0"}
    monkeypatch.setattr(env.sysconfig, "get_config_var", values.get)
    assert env.stub_library_path(None) == (str(lib), "")
    assert env.stub_library_path(f"/opt/x:{lib}") == (f"{lib}:/opt/x", "")
    assert env.stub_library_path(f"{lib}:/opt/x") == (f"{lib}:/opt/x", "")
    values["Py_ENABLE_SHARED"] = 0
    path, warning = env.stub_library_path("/opt/x")
    assert path == "/opt/x" and "linked statically" in warning


def test_port_in_use_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(BadInput, match=f"--http-port {port}: the port is in use"):
            env.check_port_free("127.0.0.1", port, "--http-port")
    with pytest.raises(BadInput, match="between 1 and 65535"):
        env.check_port_free("127.0.0.1", 70000, "--grpc-port")
    with pytest.raises(BadInput, match="not an address of this machine"):
        env.check_port_free("192.0.2.1", 8000, "--http-port")
