"""SIGINT and SIGTERM at the worst moments leave no partial artefact and exit non-zero.

The real CLI runs in a subprocess under a small harness (HARNESS below, test-only: srx
itself has no test hooks) that marks a moment and, for `rename`, holds there:

* rename: the finished temporary file `.NAME.*.part` is in place and srx is about to
  rename it to NAME (os.replace is held for up to 5 minutes): the latest point of an
  interrupt; the temp file must go, NAME must not appear.
* a function (`module:attr`): a marker is written when it is called, then it runs again
  and again until the test says it has sent the signal (at most 5 minutes) and returns its
  last result: the signal lands in the middle of PyTorch or onnxruntime compute (their C
  code and worker threads must not swallow it: srx must still stop promptly with its own
  message), or of a TensorRT build that srx cancels on it. With
  `hold`, the call instead waits for the signal first (for moments that pass too quickly to
  hit, or that are not a computation to repeat).

The test sends the signal as soon as the marker file exists. Both holds make where it
lands independent of timing: a run once let the marked call and the rest of the
verification (1.7 s) finish before a loaded machine got the signal out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, assert_one_line_error
from PIL import Image
from robust import files_under, save_checkpoint, save_image, tiny_model

HARNESS = r"""
import importlib, os, sys, time
marker = os.environ["SRX_TEST_MARKER"]
sent = os.environ["SRX_TEST_SENT"]
target = os.environ["SRX_TEST_AT"]
let_through = int(os.environ.get("SRX_TEST_LET_THROUGH", "0"))

def mark(what):
    with open(marker, "w") as f:
        f.write(what)

def hold_here():
    # Short sleeps: the kernel may deliver the signal to another thread (the video reader,
    # an OpenMP worker), and one long sleep in this thread would not be woken by it, while
    # Python runs the handler here between two short ones.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(0.05)

if target == "rename":
    real_replace = os.replace
    def held_replace(src, dst, *args, **kwargs):
        global let_through
        if str(src).endswith(".part"):
            if let_through == 0:
                mark(str(src))
                hold_here()
            let_through -= 1
        return real_replace(src, dst, *args, **kwargs)
    os.replace = held_replace
else:
    module, _, path = target.partition(":")
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for p in parents:
        owner = getattr(owner, p)
    real = getattr(owner, name)
    hold = os.environ.get("SRX_TEST_HOLD") == "1"
    def hooked(*args, **kwargs):
        mark(target)
        if hold:  # stay in the hooked call until the signal arrives (it runs in srx's calling thread)
            hold_here()
            return real(*args, **kwargs)
        deadline = time.monotonic() + 300
        while True:
            result = real(*args, **kwargs)
            if os.path.exists(sent) or time.monotonic() > deadline:
                return result
    setattr(owner, name, hooked)

from srx.cli import main
main(sys.argv[1:])
"""

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


def interrupt(args: list[str], at: str, sig: signal.Signals, tmp: Path, let_through: int = 0, hold: bool = False):
    """Run `srx ARGS` under the harness, send `sig` when `at` is reached, return the finished process."""
    marker = tmp / "marker"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SRX_TEST_MARKER": str(marker),
        "SRX_TEST_SENT": str(tmp / "sent"),
        "SRX_TEST_AT": at,
        "SRX_TEST_LET_THROUGH": str(let_through),
        "SRX_TEST_HOLD": "1" if hold else "0",
    }
    env.pop("SRX_DEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", HARNESS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 300
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"srx ended (exit {proc.returncode}) before reaching {at}: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"srx did not reach {at} within 300 s")
        time.sleep(0.01)
    proc.send_signal(sig)
    (tmp / "sent").touch()
    try:
        out, err = proc.communicate(timeout=120)  # a guard against a swallowed signal, not a timing
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"srx did not stop within 120 s of {sig.name} at {at}: the signal was swallowed")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def check_interrupted(proc, sig: signal.Signals) -> None:
    line = assert_one_line_error(proc, 128 + sig)
    assert line == f"srx: error: interrupted by {sig.name}; no partial output was left", line


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("w") / "tiny_x2.pth", tiny_model())


# -- srx export ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", list(SIGNALS), ids=list(SIGNALS))
def test_export_before_the_rename(tmp_path, tiny, sig):
    out = tmp_path / "out"
    out.mkdir()
    args = [
        "export",
        "--weights",
        str(tiny),
        "--input",
        "24x16",
        "-o",
        str(out / "m.onnx"),
        "--json",
        str(out / "r.json"),
    ]
    proc = interrupt(args, "rename", SIGNALS[sig], tmp_path)
    check_interrupted(proc, SIGNALS[sig])
    assert files_under(out) == set(), "a partial artefact was left"


@pytest.mark.parametrize(
    ("at", "sig"),
    [("srx.export.verify:pytorch_output", "SIGINT"), ("onnxruntime:InferenceSession.run", "SIGTERM")],
    ids=["in-pytorch", "in-onnxruntime"],
)
def test_export_during_verification(tmp_path, at, sig):
    """The embedded paper-size model, verified at 320x180 and two smaller sizes."""
    out = tmp_path / "out"
    out.mkdir()
    proc = interrupt(["export", "-o", str(out / "m.onnx")], at, SIGNALS[sig], tmp_path)
    check_interrupted(proc, SIGNALS[sig])
    assert files_under(out) == set()


# -- srx upscale ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paper_size(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default's weights as a checkpoint: the same compute, and no untrained-model
    warning, which `srx upscale` prints before the work (its one error line stays alone)."""
    from srx.models import default_model

    return save_checkpoint(tmp_path_factory.mktemp("paper") / "paper_x4.pth", default_model(4))


@pytest.fixture
def images(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    save_image(src / "a.png", 20, 24, seed=1)
    save_image(src / "b.png", 16, 28, seed=2)
    return src


@pytest.mark.parametrize("sig", list(SIGNALS), ids=list(SIGNALS))
def test_upscale_before_the_first_rename(tmp_path, tiny, images, sig):
    """The output folder srx created for the run is removed again: nothing was written into it."""
    out = tmp_path / "out" / "new"
    args = ["upscale", str(images), "-o", str(out), "--weights", str(tiny), "--backend", "torch"]
    proc = interrupt(args, "rename", SIGNALS[sig], tmp_path)
    check_interrupted(proc, SIGNALS[sig])
    assert not (tmp_path / "out").exists(), sorted(files_under(tmp_path / "out"))


def test_upscale_before_the_second_rename(tmp_path, tiny, images):
    """The first image is complete and stays; the second leaves nothing."""
    out = tmp_path / "out"
    args = ["upscale", str(images), "-o", str(out), "--weights", str(tiny), "--backend", "torch"]
    proc = interrupt(args, "rename", signal.SIGTERM, tmp_path, let_through=1)
    check_interrupted(proc, signal.SIGTERM)
    assert files_under(out) == {"a.png"}
    done = np.asarray(Image.open(out / "a.png"))
    assert done.shape == (40, 48, 3)


@pytest.mark.parametrize(
    ("backend", "at", "sig"),
    [
        ("torch", "srx.runtime.torch_runner:TorchRunner.execute", "SIGINT"),
        ("onnxruntime", "onnxruntime:InferenceSession.run", "SIGTERM"),
    ],
    ids=["in-pytorch", "in-onnxruntime"],
)
def test_upscale_during_compute(tmp_path, paper_size, backend, at, sig):
    """The paper-size model on a 256x256 image, interrupted mid-forward."""
    src = save_image(tmp_path / "big.png", 256, 256)
    out = tmp_path / "out"
    out.mkdir()
    args = ["upscale", str(src), "-o", str(out / "big.png"), "--weights", str(paper_size), "--backend", backend,
            "--json", str(out / "r.json")]  # fmt: skip
    proc = interrupt(args, at, SIGNALS[sig], tmp_path)
    check_interrupted(proc, SIGNALS[sig])
    assert files_under(out) == set()


# -- srx quantize and srx build-engine -----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from onnx_models import write_onnx

    return write_onnx(tmp_path_factory.mktemp("onnx"), "safmn")


@pytest.fixture
def calib(tmp_path: Path) -> Path:
    folder = tmp_path / "calib"
    folder.mkdir()
    for i in range(3):
        save_image(folder / f"{i}.png", 40, 48, seed=i)
    return folder


@pytest.mark.parametrize(
    ("at", "sig"),
    [("rename", "SIGINT"), ("onnxruntime:InferenceSession.run", "SIGTERM")],
    ids=["before-the-rename", "in-onnxruntime"],
)
def test_quantize(tmp_path, tiny_onnx, calib, at, sig):
    out = tmp_path / "out"
    out.mkdir()
    args = [
        "quantize",
        str(tiny_onnx),
        "--calib-dir",
        str(calib),
        "-o",
        str(out / "q.onnx"),
        "--json",
        str(out / "r.json"),
    ]
    proc = interrupt(args, at, SIGNALS[sig], tmp_path)
    check_interrupted(proc, SIGNALS[sig])
    assert files_under(out) == set()


@pytest.mark.parametrize(
    ("at", "let_through", "sig"),
    [
        ("rename", 0, "SIGTERM"),
        ("rename", 1, "SIGINT"),
        ("tensorrt_rtx:Builder.build_serialized_network", 0, "SIGINT"),
    ],
    ids=["before-the-fp16-onnx-rename", "before-the-engine-rename", "in-the-tensorrt-rtx-build"],
)
def test_build_engine(tmp_path, tiny_onnx, at, let_through, sig):
    """The engine and its sidecar appear together or not at all. The FP16 ONNX is written
    (atomically) before them: interrupted after that, it stays, complete and loadable."""
    pytest.importorskip("tensorrt_rtx")
    out = tmp_path / "out"
    out.mkdir()
    args = ["build-engine", str(tiny_onnx), "--fp16", "--backend", "tensorrt-rtx", "-o", str(out / "m.engine")]
    proc = interrupt([*args, "--max", "128x128"], at, SIGNALS[sig], tmp_path, let_through=let_through)
    check_interrupted(proc, SIGNALS[sig])
    left = files_under(out)
    assert left <= {"m.fp16.onnx"}, sorted(left)
    if left:
        import onnx

        onnx.checker.check_model(onnx.load(str(out / "m.fp16.onnx")))
    assert left == ({"m.fp16.onnx"} if let_through else set())


# -- srx upscale on videos (issue 15) ------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("av", reason="PyAV is the 'video' extra: pip install 'srx[video]'")
    from video_files import write_video

    return write_video(tmp_path_factory.mktemp("video") / "in.mp4").path


@pytest.mark.parametrize("sig", list(SIGNALS), ids=list(SIGNALS))
def test_video_before_the_rename(tmp_path, tiny, clip, sig):
    """The whole video is encoded into the temporary file; the signal comes before the rename.
    The output folder srx created goes too."""
    out = tmp_path / "out" / "new"
    args = ["upscale", str(clip), "-o", str(out), "--weights", str(tiny), "--backend", "torch"]
    proc = interrupt(args, "rename", SIGNALS[sig], tmp_path)
    check_interrupted(proc, SIGNALS[sig])
    assert not (tmp_path / "out").exists(), sorted(files_under(tmp_path / "out"))


@pytest.mark.parametrize("sig", list(SIGNALS), ids=list(SIGNALS))
def test_video_in_the_middle_of_the_pipeline(tmp_path, tiny, clip, sig):
    """In the model's first call: the reader thread is decoding ahead, the writer thread waits
    and the temporary file holds the header; all of it must stop and go."""
    out = tmp_path / "out"
    out.mkdir()
    args = ["upscale", str(clip), "-o", str(out / "up.mkv"), "--weights", str(tiny), "--backend", "torch"]
    proc = interrupt(args, "srx.video.frames:HostFrames.infer", SIGNALS[sig], tmp_path, let_through=0, hold=True)
    check_interrupted(proc, SIGNALS[sig])
    assert files_under(out) == set()
