"""The CLI's last line of defence: failures no check anticipated still end as one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
import workspace
from conftest import REPO, assert_one_line_error, run_srx
from robust import run_inprocess


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory):
    return workspace.build(tmp_path_factory.mktemp("defence-inputs"))


def test_full_standard_output_is_one_line(ws):
    """`srx info ... > /dev/full`: the write to stdout fails, not srx."""
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "srx", "info", str(ws / "onnx/good_x2.onnx")],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
        )
    assert "No space left on device; free some space" in assert_one_line_error(proc, 2)


@pytest.mark.parametrize(
    ("error", "code", "expect"),
    [
        (MemoryError("Unable to allocate 38.0 GiB"), 1, "ran out of memory"),
        (
            RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"),
            1,
            "ran out of memory",
        ),
        (OSError(28, "No space left on device", "/data/x.png"), 2, "cannot write /data/x.png"),
        (ValueError("an unexpected bug\nspanning two lines"), 1, "internal error: ValueError: an unexpected bug"),
    ],
    ids=["memory-error", "torch-allocator", "disk-full", "bug"],
)
def test_unexpected_errors_are_one_line(ws, tmp_path, monkeypatch, error, code, expect):
    import srx.upscale

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(srx.upscale, "upscale_image", fail)
    args = ["upscale", str(ws / "img/good.png"), "-o", str(tmp_path / "o.png"), "--backend", "torch"]
    result = run_inprocess(*args, "--weights", str(ws / "ckpt/good_x2.pth"))
    assert expect in assert_one_line_error(result, code)
    assert list(tmp_path.iterdir()) == []


def test_a_multi_line_message_is_printed_on_one_line(monkeypatch):
    import srx.inspect
    from srx.errors import BadInput

    def describe(*args, **kwargs):
        raise BadInput("first part\nsecond part: do this")

    monkeypatch.setattr(srx.inspect, "describe", describe)
    line = assert_one_line_error(run_inprocess("info", "x.pth"), 2)
    assert line == "srx: error: first part second part: do this"


def test_debug_after_the_command_shows_the_traceback(ws):
    missing = str(ws / "ckpt/missing.pth")
    proc = run_srx("info", missing, "--debug")
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "BadInput" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("srx: error: ")
    assert "Traceback" not in run_srx("info", missing).stderr


def test_no_command_is_one_line():
    line = assert_one_line_error(run_inprocess(), 2)
    assert (
        "no command given: choose one of bench, build-engine, eval, export, info, quantize, serve, serve-config, train, upscale"
        in line
    )
