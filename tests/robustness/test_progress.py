"""Progress of long work (issue 16): bars with what, counts and ETA on a terminal; nothing elsewhere.

The real CLI runs with its stderr on a pseudo-terminal, as for a person at a terminal.
Without a terminal (every other test) stderr holds no progress at all; --quiet and
--json - silence it on a terminal too.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest
from conftest import REPO, run_srx
from onnx_models import onnx_bytes, write_images
from robust import save_checkpoint, save_image, tiny_model

pytest.importorskip("onnxruntime")


def run_on_terminal(*args: str) -> tuple[int, str, str]:
    """`srx ARGS` with stderr on a pseudo-terminal; (exit code, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    env.pop("SRX_DEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "srx", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env
    )
    os.close(slave)
    shown = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end of the terminal
            break
        if not data:
            break
        shown.append(data)
    out = proc.stdout.read().decode()  # type: ignore[union-attr]
    code = proc.wait(timeout=600)
    os.close(master)
    return code, out, b"".join(shown).decode(errors="replace")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny_x2.pth", tiny_model())


def test_upscale_shows_images_and_tiles_on_a_terminal(tmp_path, ckpt):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        save_image(folder / name, 64, 64)
    args = ["upscale", str(folder), "-o", str(tmp_path / "out"), "--weights", str(ckpt), "--tile", "32"]
    code, out, shown = run_on_terminal(*args)
    assert code == 0, shown
    assert "images:" in shown and "/2 [" in shown and "img/s]" in shown  # what, count of total, rate
    assert "a.png:" in shown and "b.png:" in shown and "/4 [" in shown and "tile/s]" in shown  # each image's tiles
    assert "00:00<" in shown  # tqdm's [elapsed<remaining]: the ETA
    assert "upscaled 2 images" in out


@pytest.mark.parametrize("flag", [["--quiet"], ["--json", "-"]])
def test_quiet_and_json_to_stdout_silence_it(tmp_path, ckpt, flag):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        save_image(folder / name, 64, 64)
    args = ["upscale", str(folder), "-o", str(tmp_path / "out"), "--weights", str(ckpt), "--tile", "32", *flag]
    code, _, shown = run_on_terminal(*args)
    assert code == 0, shown
    assert "%|" not in shown and "img/s" not in shown and "tile/s" not in shown
    assert shown.startswith("srx: warning: --tile 32")  # warnings still show; with --json - so does the table


def test_quantize_shows_its_stages_on_a_terminal(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(onnx_bytes("safmn"))
    calib = write_images(tmp_path / "train", 4, (64, 64))
    code, out, shown = run_on_terminal("quantize", str(model), "--calib-dir", str(calib), "--calib-images", "2",
                                       "--held-out", "1", "--crop", "24", "--sensitivity-crops", "1")  # fmt: skip
    assert code == 0, shown
    for stage in ("reading images", "calibrating:", "layer sensitivity", "srx: calibrating the inputs of"):
        assert stage in shown, (stage, shown)
    assert "measuring the accuracy on 1 held-back image" in shown
    assert "wrote" in out


def _eval_dataset(folder):
    folder.mkdir()
    for i, name in enumerate(("a.png", "b.png")):
        save_image(folder / name, 48, 40, seed=i)
    return folder


BENCH = ("bench", "--backends", "torch", "--device", "cpu", "--input", "32x24", "--runs", "1", "--warmup", "0")


def test_eval_shows_images_on_a_terminal(tmp_path, ckpt):
    data = _eval_dataset(tmp_path / "data")
    code, out, shown = run_on_terminal("eval", "--dataset", str(data), "--model", str(ckpt))
    assert code == 0, shown
    assert "eval x2:" in shown and "/2 [" in shown and "img/s]" in shown  # what, count of total, rate
    assert "00:00<" in shown  # the ETA
    assert "PSNR" in out


def test_bench_shows_runs_on_a_terminal(tmp_path, ckpt):
    code, out, shown = run_on_terminal(*BENCH, "--weights", str(ckpt))
    assert code == 0, shown
    # The backend's bar: no warm-up, one accuracy run and one timed run.
    assert "torch            :" in shown and "/2 [" in shown and "run/s]" in shown, shown
    assert "00:00<" in shown
    assert "torch" in out


def test_eval_and_bench_show_nothing_off_a_terminal(tmp_path, ckpt):
    """stderr a pipe (a log, CI): no bar at all, and the results unchanged on stdout."""
    data = _eval_dataset(tmp_path / "data")
    for args in (["eval", "--dataset", str(data), "--model", str(ckpt)], [*BENCH, "--weights", str(ckpt)]):
        proc = run_srx(*args)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == "", proc.stderr
        assert proc.stdout.strip(), args
