"""`srx serve` refuses bad options in one line before anything starts, and says how to install
PyTriton where it is missing (this .venv has no PyTriton: it lives in .venv-serve)."""

from __future__ import annotations

import importlib.util
import socket

import pytest
from conftest import assert_one_line_error, run_srx
from onnx_models import write_onnx
from test_import_light import _run


@pytest.fixture(scope="module")
def onnx(tmp_path_factory):
    return write_onnx(tmp_path_factory.mktemp("onnx"), "safmn", "tiny.onnx", n_blocks=1)


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--instances", "0"], "--instances 0: use 1 or more"),
        (["--max-batch", "0"], "--max-batch 0: use 1 or more"),
        (["--max-queue-delay-us", "-5"], "cannot be negative"),
        (["--grace-period", "-1"], "--grace-period -1: give seconds between 0 and 3600"),
        (["--http-port", "9000", "--grpc-port", "9000"], "the ports must differ"),
        (["--http-port", "0"], "between 1 and 65535"),
        (["--max-size", "big"], "--max-size"),
        (["--backend", "nope"], "unknown backend 'nope'"),
        (["--scale", "5"], "--scale 5 is not supported"),
        (["--host", "192.0.2.7"], "not an address of this machine"),
        (["--model", "{tmp}/missing.onnx"], "does not exist"),
    ],
)
def test_bad_options(onnx, tmp_path, args, expect):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--model" not in argv:
        argv += ["--model", str(onnx)]
    line = assert_one_line_error(run_srx("serve", *argv), 2)
    assert expect in line, line


def test_port_in_use(onnx):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = assert_one_line_error(run_srx("serve", "--model", str(onnx), "--metrics-port", str(port)), 2)
    assert f"--metrics-port {port}: the port is in use" in line


@pytest.mark.skipif(importlib.util.find_spec("pytriton") is not None, reason="PyTriton is installed here")
def test_missing_pytriton_says_how_to_install(onnx):
    line = assert_one_line_error(
        run_srx(
            "serve", "--model", str(onnx), "--http-port", "18950", "--grpc-port", "18951", "--metrics-port", "18952"
        ),
        2,
    )
    assert "nvidia-pytriton" in line and "pip install 'srx[serve]' in an environment of its own" in line, line


def test_help_without_optional_packages():
    for command in ("serve", "serve-config"):
        proc = _run(f"import sys; sys.argv = ['srx', '{command}', '--help']; from srx.cli import main; main()")
        assert proc.returncode == 0, proc.stderr
        assert "Usage: srx " + command in proc.stdout


def _loadtest(*args: str):
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("SRX_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "srx.serve.loadtest", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--clients", "0"], "--clients '0'"),
        (["--seconds", "0"], "--seconds 0"),
        (["--distinct", "0"], "--distinct 0"),
        (["--input", "4x4"], "smaller than this model's minimum"),
        (["--url", "127.0.0.1:{port}"], "no Triton server answers at 127.0.0.1:"),
        (["--url", "127.0.0.1:{port}", "--protocol", "grpc"], "no Triton server answers at 127.0.0.1:"),
    ],
)
def test_loadtest_bad_input(onnx, args, expect):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [a.replace("{port}", str(port)) for a in args]
    proc = _loadtest("--model", str(onnx), *argv)
    line = assert_one_line_error(proc, 2)
    assert expect in line, line
