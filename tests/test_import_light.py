"""`import srx` and `srx --help` work with none of the optional packages (docs/architecture.md#style-rules).

A subprocess installs an import hook that makes torch, onnx, onnxruntime, TensorRT,
TensorRT-RTX, cuda-python, Triton, PyAV and OpenVINO look absent, as on a bare machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import REPO

BLOCKED = [
    "torch",
    "onnx",
    "onnxruntime",
    "onnxslim",
    "tensorrt",
    "tensorrt_rtx",
    "triton",
    "cuda",
    "matplotlib",
    "av",
    "openvino",
]

HIDE = f"""
import sys, importlib.abc
class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by test)", name=name)
        return None
sys.meta_path.insert(0, _Hide())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", HIDE + code], capture_output=True, text=True, env=env, timeout=120)


def test_hook_really_hides_torch():
    proc = _run("import torch")
    assert proc.returncode != 0 and "hidden by test" in proc.stderr


def test_import_srx_without_optional_packages():
    proc = _run("import srx, srx.spec, srx.errors, srx.sizes, srx.fileio, srx.video; print(srx.__version__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == __import__("srx").__version__


def test_help_without_optional_packages():
    proc = _run("import sys; sys.argv = ['srx', '--help']; from srx.cli import main; main()")
    assert proc.returncode == 0, proc.stderr
    assert "Commands:" in proc.stdout
    for command in ("info", "export", "eval", "bench", "upscale", "quantize", "build-engine"):
        assert command in proc.stdout
        sub = _run(f"import sys; sys.argv = ['srx', '{command}', '--help']; from srx.cli import main; main()")
        assert sub.returncode == 0, sub.stderr


def test_runtime_registry_is_torch_free():
    """The registry and runner contract import and answer without torch (a Jetson runs TensorRT without it).

    The TensorRT runner itself (srx.runtime.tensorrt_runner, issue 4) gets its own
    torch-hidden import test when it lands.
    """
    code = (
        "import srx.runtime as r, srx.runtime.base, srx.runtime.device, srx.runtime.memory\n"
        "for n in r.backend_names():\n"
        "    a = r.check_backend(n, 'cpu')\n"
        "    print(n, a.ok, a.reason)\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert lines["torch"].startswith("False Python package 'torch' is not installed")
    for name in ("openvino", "openvino-bf16", "openvino-int8"):
        assert lines[name].startswith("False Python package 'openvino' is not installed (pip install 'srx[openvino]'")
    assert len(lines) == 13


def test_tensorrt_runtime_path_needs_no_torch(tmp_path):
    """Engine sidecar, guard, session and the tensorrt runners run with numpy + TensorRT + cuda-python
    only (as on a Jetson without torch): stand-in TensorRT / CUDA modules, torch and onnx hidden."""
    code = f"""
import sys, json
sys.path.insert(0, {str(REPO / "tests")!r})
import numpy as np
from trt_fakes import ENGINE_MAGIC, FakeCudart, make_trt
import srx.runtime.tensorrt_runner, srx.runtime.trt_session, srx.runtime.sidecar, srx.runtime.cudart
from srx.runtime.cudart import Cuda
from srx.runtime.sidecar import write_engine_pair
from srx.runtime.trt_session import EngineSession
import hashlib
data = ENGINE_MAGIC + b":x"
side = {{"format": "srx-engine", "format_version": 1, "engine_sha256": hashlib.sha256(data).hexdigest(),
        "backend": "tensorrt", "backend_version": "10.3.0.30", "precision": "fp16",
        "spec": {{"arch": "safmn", "scale": 4, "dim": 36, "n_blocks": 8, "ffn_scale": 2.0, "params": 1, "min_size": 8}},
        "profile": {{"min": "8x8", "opt": "32x32", "max": "64x64", "batch": [1, 1, 1]}},
        "device": {{"name": "NVIDIA Fake GPU", "compute_capability": "8.9"}}}}
write_engine_pair({str(tmp_path / "m.engine")!r}, data, side)
with EngineSession({str(tmp_path / "m.engine")!r}, trt_module=make_trt("10.3.0.30"), cuda=Cuda(FakeCudart())) as s:
    y = s.run(np.ones((1, 3, 9, 11), np.float32))
print(y.shape, "torch" in sys.modules, "onnx" in sys.modules)
"""
    hide = HIDE.replace(repr(BLOCKED), repr(["torch", "onnx", "onnxruntime", "triton", "matplotlib"]))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", hide + code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(1, 3, 36, 44) False False"


def test_base_install_pulls_no_torch_and_no_cuda_package():
    """An unpinned torch is the CUDA build on Linux (GBs of nvidia-* wheels): it is an extra."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0].lower() for d in project["dependencies"]]
    assert "torch" not in names
    assert not [n for n in names if n.startswith(("nvidia", "cuda", "tensorrt", "onnxruntime-gpu", "triton"))]
    assert project["optional-dependencies"]["torch"] == ["torch>=2.1"]


@pytest.mark.parametrize(
    ("argv", "package", "hint"),
    [
        (["info", "model.pth"], "torch", "download.pytorch.org/whl/cpu"),
        (["export", "--scale", "4", "-o", "x.onnx"], "torch", "download.pytorch.org/whl/cpu"),
        (["upscale", "in.png", "-o", "out.png"], "torch", "download.pytorch.org/whl/cpu"),
        # PyAV is named before the model loads (torch is hidden too): the video extra is the fix.
        (["upscale", "in.mp4", "-o", "out.mp4"], "av", "pip install 'srx[video]'"),
        (["bench", "--video", "in.mp4"], "av", "pip install 'srx[video]'"),
    ],
)
def test_a_command_without_its_optional_package_says_how_to_install_it(tmp_path, argv, package, hint):
    """Without torch (a bare `pip install srx`), commands that need it end in one line, exit 2."""
    from PIL import Image

    (tmp_path / "model.pth").write_bytes(b"\x80\x02}q\x00.")  # never read: torch is missing first
    Image.new("RGB", (32, 32)).save(tmp_path / "in.png")
    (tmp_path / "in.mp4").write_bytes(b"\x00" * 64)  # never read: PyAV is missing first
    code = (
        f"import os, sys; os.chdir({str(tmp_path)!r}); sys.argv = ['srx', *{argv!r}]; from srx.cli import main; main()"
    )
    proc = _run(code)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    purpose = f"'srx {argv[0]}'"
    if package == "av":
        purpose = "'srx upscale' of a video" if argv[0] == "upscale" else "'srx bench --video'"
    assert f"{purpose} needs the Python package '{package}'" in lines[0] and hint in lines[0]
    assert sorted(os.listdir(tmp_path)) == ["in.mp4", "in.png", "model.pth"]
