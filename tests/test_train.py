"""`srx train` (issue 14): it learns, writes loadable checkpoints, resumes exactly, stops
cleanly on a signal, and refuses bad input with one line.

Runs are tiny (a dim-8, one-block network, 16-pixel LR patches of synthetic images) so
the whole file takes seconds per test on a 2-core CPU; what they check does not depend
on the size.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, assert_one_line_error, run_srx, weight_path
from PIL import Image
from safetensors.torch import load_file, save_file

from srx.bench.inputs import synthetic_image
from srx.errors import BadInput
from srx.models import build_model, load_model
from srx.train import LossWeights, TrainConfig
from srx.train.data import PatchSampler
from srx.train.loop import build_student, train

TINY = {"dim": 8, "n_blocks": 1}


def save_image(path: Path, h: int, w: int, seed: int) -> Path:
    """A smooth natural-looking image (an SR network learns nothing from noise)."""
    rgb = (synthetic_image(h, w, seed).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("train-data")
    (d / "a").mkdir()
    for i, (h, w) in enumerate([(96, 128), (120, 100), (88, 90)]):
        save_image(d / "a" / f"img{i}.png", h, w, seed=i)
    save_image(d / "tiny.png", 40, 40, seed=9)  # smaller than a 64-pixel HR patch: skipped
    return d


def config(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=str(data), out=str(out), scale=4, iters=8, batch=4, patch=16, lr=2e-3, threads=1, log_every=2, **TINY
    )
    base.update(kw)
    return TrainConfig(**base)


def fixed_batch(data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    s = PatchSampler(data, scale=4, patch=16, seed=123)
    lr, hr, _ = s.batch(0, 8)
    return torch.from_numpy(lr), torch.from_numpy(hr)


def l1_on(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> float:
    with torch.no_grad():
        return float(F.l1_loss(model(batch[0]), batch[1]))


# -- learning and checkpoints ----------------------------------------------------------------


def test_training_lowers_the_loss_and_writes_a_loadable_checkpoint(data, tmp_path):
    cfg = config(data, tmp_path / "run", iters=30, val=str(data / "a"), val_every=15)
    held = fixed_batch(data)  # another seed: patches the run did not see in this order
    before = l1_on(build_student(cfg).eval(), held)
    result = train(cfg)
    assert result.iteration == 30 and result.finished
    model = load_model(tmp_path / "run" / "model.safetensors")  # what srx eval / upscale / export load
    assert (model.spec.arch, model.spec.scale, model.spec.dim, model.spec.n_blocks) == ("safmn", 4, 8, 1)
    after = l1_on(model, held)
    assert after < 0.8 * before, f"L1 on held patches {before:.4f} -> {after:.4f}"
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["iteration"] == 30 and meta["config"]["patch"] == 16
    assert meta["data"]["images"] == 3 and meta["data"]["skipped_smaller_than_patch"] == ["tiny.png"]
    assert [r["iteration"] for r in meta["scores"]["val"]] == [15, 30]
    assert meta["scores"]["best"]["psnr_y"] == max(r["psnr_y"] for r in meta["scores"]["val"])
    assert meta["sessions"][0]["versions"]["torch"] == torch.__version__
    assert load_model(tmp_path / "run" / "best.safetensors").spec.dim == 8
    from srx.inspect import describe, format_description

    info = describe(tmp_path / "run" / "model.safetensors")  # srx info: the run record travels in the file
    assert info["provenance"]["srx.train"]["iteration"] == 30
    assert "srx train, iteration 30 of 30" in format_description(info)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "iter 30/30" in log and "val a iter 30" in log
    # Nothing half-written is left behind.
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".part")]


def test_resume_equals_an_uninterrupted_run(data, tmp_path):
    train(config(data, tmp_path / "straight"))
    with pytest.raises(BadInput, match="already holds a training run"):
        train(config(data, tmp_path / "straight"))
    first = train(config(data, tmp_path / "staged", until=3))
    assert first.iteration == 3 and not first.finished
    from srx.train.loop import resumed_config

    saved = json.loads((tmp_path / "staged" / "model.json").read_text())
    second = train(resumed_config(saved["config"], {}), resume=tmp_path / "staged")
    assert second.iteration == 8
    a = load_file(tmp_path / "straight" / "resume.safetensors")
    b = load_file(tmp_path / "staged" / "resume.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("optim.") for k in a)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"weights / Adam state differ after resume: {different[:5]}"
    meta = json.loads((tmp_path / "staged" / "model.json").read_text())
    assert [(s["start_iteration"], s["end_iteration"]) for s in meta["sessions"]] == [(0, 3), (3, 8)]


def test_max_minutes_stops_resumably_and_the_resumed_run_is_the_same(data, tmp_path):
    # A budget already spent when the first iteration ends: the run stops after exactly one.
    train(config(data, tmp_path / "straight", iters=4))
    first = train(config(data, tmp_path / "budget", iters=4, max_minutes=1e-9))
    assert first.iteration == 1 and not first.finished
    assert "--max-minutes 1e-09 reached at iteration 1" in (tmp_path / "budget" / "train.log").read_text()
    from srx.train.loop import resumed_config

    saved = json.loads((tmp_path / "budget" / "model.json").read_text())
    resumed = resumed_config(saved["config"], {})
    assert resumed.max_minutes is None  # the budget was that session's
    assert train(resumed, resume=tmp_path / "budget").iteration == 4
    a = load_file(tmp_path / "straight" / "resume.safetensors")
    b = load_file(tmp_path / "budget" / "resume.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_threads_are_given_back(data, tmp_path):
    """--threads is process-wide in PyTorch: an in-process run (a notebook, these tests) must
    not leave it changed (a video test once got 1-level differences from a leaked 1 thread)."""
    before = torch.get_num_threads()
    train(config(data, tmp_path / "run", iters=1, threads=2 if before == 1 else 1))
    assert torch.get_num_threads() == before


def test_schedule_warmup_then_cosine():
    cfg = TrainConfig(data=".", out=".", iters=100, lr=1e-3, min_lr=1e-5, warmup=10)
    assert cfg.lr_at(0) == pytest.approx(1e-4) and cfg.lr_at(9) == pytest.approx(1e-3)
    assert cfg.lr_at(10) == pytest.approx(1e-3)
    assert cfg.lr_at(55) == pytest.approx((1e-3 + 1e-5) / 2)
    assert cfg.lr_at(100) == pytest.approx(1e-5)


def test_patches_are_aligned_eval_lr(data):
    """A training LR patch is the crop of the whole image's MATLAB bicubic LR (srx eval's LR)."""
    from srx.imresize import imresize

    s = PatchSampler(data, scale=4, patch=16, seed=0)
    hr = s.hr[0]
    assert np.array_equal(s.lr[0], imresize(hr, 1 / 4))
    lr1, hr1, _ = s.batch(5, 3)
    lr2, hr2, _ = s.batch(5, 3)
    assert np.array_equal(lr1, lr2) and np.array_equal(hr1, hr2)  # a function of (seed, iteration)
    assert lr1.shape == (3, 3, 16, 16) and hr1.shape == (3, 3, 64, 64)
    # Each HR patch, downscaled, is its LR patch away from the crop border, up to MATLAB's
    # uint8 rounding between passes (whose order flips with a transposed patch).
    for i in range(3):
        hr_img = (hr1[i].transpose(1, 2, 0) * 255).round().astype(np.uint8)
        down = imresize(hr_img, 1 / 4).astype(np.int16)[3:-3, 3:-3]
        lr_img = (lr1[i].transpose(1, 2, 0) * 255).round().astype(np.int16)[3:-3, 3:-3]
        diff = np.abs(down - lr_img)
        assert diff.max() <= 2 and diff.mean() < 0.3, (diff.max(), diff.mean())


def test_init_copies_matching_tensors(data, tmp_path):
    donor = build_model("safmn", 4, **TINY, seed=7)
    save_file(donor.state_dict(), str(tmp_path / "donor.safetensors"))
    cfg = config(data, tmp_path / "run", iters=1, lr=1e-12, min_lr=0.0, init=str(tmp_path / "donor.safetensors"))
    train(cfg)
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["init"]["copied"] == len(donor.state_dict()) and meta["init"]["kept_fresh"] == []
    trained = load_file(tmp_path / "run" / "model.safetensors")
    for k, v in donor.state_dict().items():
        torch.testing.assert_close(trained[k], v, atol=1e-8, rtol=0)  # one step at lr 1e-12


def test_fit_head_starts_an_x2_network_on_an_x4_body(data, tmp_path):
    """--init from another scale copies all but the head; --fit-head then solves the head."""
    donor = build_model("safmn", 4, **TINY, seed=7)
    save_file(donor.state_dict(), str(tmp_path / "donor.safetensors"))
    kw = dict(scale=2, iters=1, lr=1e-12, min_lr=0.0, init=str(tmp_path / "donor.safetensors"))
    train(config(data, tmp_path / "fresh", **kw))
    train(config(data, tmp_path / "fit", fit_head=True, **kw))
    head = ["to_img.0.weight", "to_img.0.bias"]
    lr_np, hr_np, _ = PatchSampler(str(data), scale=2, patch=16, seed=3).batch(0, 8)
    lr, hr = torch.from_numpy(lr_np), torch.from_numpy(hr_np)
    errors = {}
    for run in ("fresh", "fit"):
        meta = json.loads((tmp_path / run / "model.json").read_text())
        assert meta["config"]["fit_head"] == (run == "fit") and meta["init"]["kept_fresh"] == head
        trained = load_file(tmp_path / run / "model.safetensors")
        for k, v in donor.state_dict().items():
            if k not in head:
                torch.testing.assert_close(trained[k], v, atol=1e-8, rtol=0)  # the body is the donor's
        with torch.no_grad():
            errors[run] = F.l1_loss(load_model(tmp_path / run / "model.safetensors")(lr), hr).item()
    # A random head gives a dark, noisy image; the fitted one an upscaler's.
    assert errors["fit"] < errors["fresh"] / 4, errors


@pytest.mark.shared
def test_teacher_init_and_feature_distillation_from_team15(data, tmp_path):
    """team15 as --init (60 tensors match the paper model) and as teacher with block features."""
    team15 = str(weight_path("team15_SAFMN.pth"))
    cfg = config(
        data,
        tmp_path / "run",
        dim=None,
        n_blocks=None,
        iters=2,
        batch=2,
        init=team15,
        teacher=team15,
        weights=LossWeights(pixel=1.0, distill=1.0, feature=0.5),
    )
    result = train(cfg)
    assert result.meta["init"]["copied"] == 60
    assert result.meta["teacher"]["source"] == "team15_SAFMN.pth"
    assert set(result.meta["loss"]) == {"total", "pixel", "distill", "feature"}
    assert result.meta["loss"]["feature"] > 0


# -- the command line ------------------------------------------------------------------------


def _srx_train(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("SRX_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "srx", "train", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_leaves_a_resumable_checkpoint(data, tmp_path, sig):
    """Ctrl-C (or kill) mid-run: one line, exit 128+signal, a checkpoint that resumes."""
    out = tmp_path / "run"
    args = ["--data", str(data / "a"), "--dim", "8", "--blocks", "1", "--patch", "16", "--batch", "2"]
    proc = _srx_train(*args, "--iters", "100000", "--log-every", "1", "--threads", "1", "-o", str(out), cwd=tmp_path)
    log = out / "train.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "iter 2/" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.2)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert_one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), 128 + sig)
    assert f"interrupted by {signal.Signals(sig).name} at iteration" in stderr and "--resume" in stderr
    meta = json.loads((out / "model.json").read_text())
    stopped = meta["iteration"]
    assert stopped >= 2 and not meta["finished"]
    assert load_model(out / "model.safetensors").spec.dim == 8
    assert not [p.name for p in out.iterdir() if p.name.endswith(".part")]
    # The checkpoint continues: two more iterations from where it stopped.
    done = run_srx("train", "--resume", str(out), "--until", str(stopped + 2), "--threads", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "model.json").read_text())["iteration"] == stopped + 2


def test_cli_run_and_resume(data, tmp_path):
    args = ["--data", str(data), "--dim", "8", "--blocks", "1", "--patch", "16", "--batch", "2", "--threads", "1"]
    first = run_srx("train", *args, "--iters", "4", "--until", "2", "-o", str(tmp_path / "r"), "--json", "-")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["iteration"] == 2
    assert "stopped at --until 2: continue with srx train --resume" in first.stderr
    budget = run_srx("train", "--resume", str(tmp_path / "r"), "--threads", "1", "--max-minutes", "1e-9")
    assert budget.returncode == 0, budget.stderr
    assert "stopped by --max-minutes at iteration 3: continue with srx train --resume" in budget.stdout
    second = run_srx("train", "--resume", str(tmp_path / "r"), "--threads", "1")
    assert second.returncode == 0, second.stderr
    assert "to iteration 4 of 4" in second.stdout
    again = run_srx("train", "--resume", str(tmp_path / "r"))
    assert "already at iteration 4 of --iters 4" in assert_one_line_error(again, 2)


# -- bad input: one line, exit 2, before any training ------------------------------------------


def _run(*args: str, capsys) -> tuple[int, str]:
    """`srx train ARGS` in this process (saves the torch import of a subprocess per case)."""
    from srx.cli import main

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as e:
            main(["train", *args])
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("srx: error: ") and "Traceback" not in err, err
    return int(e.value.code), lines[0]


@pytest.fixture(scope="module")
def bad(tmp_path_factory, data) -> Path:
    d = tmp_path_factory.mktemp("train-bad")
    (d / "empty").mkdir()
    (d / "small").mkdir()
    save_image(d / "small" / "s.png", 60, 60, seed=1)
    (d / "tinyval").mkdir()
    save_image(d / "tinyval" / "t.png", 20, 20, seed=2)
    (d / "notimg").mkdir()
    (d / "notimg" / "x.png").write_bytes(b"not a png")
    (d / "notes").mkdir()
    (d / "notes" / "a.txt").write_text("hello")
    save_file(build_model("safmn", 2, **TINY, seed=1).state_dict(), str(d / "x2.safetensors"))
    save_file({"fc.weight": torch.zeros(2, 2)}, str(d / "foreign.safetensors"))
    save_file(build_model("safmn", 2, dim=12, n_blocks=1, seed=1).state_dict(), str(d / "dim12.safetensors"))
    save_file(build_model("safmn", 4, dim=12, n_blocks=1, seed=1).state_dict(), str(d / "dim12x4.safetensors"))
    (d / "fake-run").mkdir()
    save_file({"w": torch.zeros(1)}, str(d / "fake-run" / "resume.safetensors"))
    return d


TINY_ARGS = ("--dim", "8", "--blocks", "1", "--patch", "16", "--batch", "2", "--iters", "2")


@pytest.mark.parametrize(
    "args, expect",
    [
        (("--data", "{bad}/nope"), "does not exist"),
        (("--data", "{bad}/empty"), "holds no images"),
        (("--data", "{bad}/notes"), "holds no images"),
        (("--data", "{bad}/small"), "no image in --data"),
        (("--data", "{bad}/notimg"), "not an image srx can read"),
        (("--data", "{bad}/x2.safetensors"), "is a file, not a folder"),
        (("--data", "{data}", "--teacher", "{bad}/x2.safetensors"), "is a x2 model and this run trains x4"),
        (("--data", "{data}", "--teacher", "{bad}/foreign.safetensors"), "not a SAFMN-family checkpoint"),
        (("--data", "{data}", "--teacher", "{bad}/missing.pth"), "does not exist"),
        (("--data", "{data}", "--init", "{bad}/dim12.safetensors"), "has no tensor with a name and shape"),
        (("--data", "{data}", "--feature-weight", "1"), "needs a teacher"),
        (("--data", "{data}", "--distill-weight", "1"), "needs a teacher"),
        (("--data", "{data}", "--teacher", "{bad}/dim12x4.safetensors", "--feature-weight", "1"), "same width"),
        (("--data", "{data}", "--pixel-weight", "0"), "nothing would be learned"),
        (("--data", "{data}", "--patch", "4"), "smaller than this model's minimum"),
        (("--data", "{data}", "--scale", "5"), "not supported"),
        (("--data", "{data}", "--iters", "0"), "--iters 0"),
        (("--data", "{data}", "--lr", "-1"), "--lr -1"),
        (("--data", "{data}", "--warmup", "5"), "--warmup 5"),
        (("--data", "{data}", "--dim", "10"), "divisible by 4"),
        (("--data", "{data}", "--qat", "--bf16"), "drop --bf16"),
        (("--data", "{data}", "--fit-head"), "give --init CKPT"),
        (("--data", "{data}", "--max-minutes", "0"), "--max-minutes 0"),
        (("--data", "{data}", "--linear-start", "--init", "{bad}/x2.safetensors"), "give one of them"),
        (("--data", "{data}", "--teacher", "seeded"), "is untrained"),
        (("--data", "{data}", "--val", "{bad}/nope"), "does not exist"),
        (("--data", "{data}", "--val", "{bad}/tinyval"), "too small for x4"),
        (("--resume", "{bad}/nope"), "does not exist"),
        (("--resume", "{bad}/empty"), "holds no resume.safetensors"),
        (("--resume", "{bad}/fake-run"), "not an srx train resume checkpoint"),
        (("--resume", "{bad}/x2.safetensors"), "not an srx train resume checkpoint"),
        (("--iters", "3"), "--data DIR is required"),
    ],
)
def test_bad_input(args, expect, bad, data, tmp_path, capsys):
    argv = [a.replace("{bad}", str(bad)).replace("{data}", str(data)) for a in args]
    if not any(a == "--resume" for a in argv):
        argv = [*TINY_ARGS, "-o", str(tmp_path / "out"), *argv]  # the case's options come last and win
    code, line = _run(*argv, capsys=capsys)
    assert code == 2 and expect in line, line
    assert not (tmp_path / "out").exists(), "a refused run left a folder"


def test_bad_resume_options(data, tmp_path, capsys):
    out = tmp_path / "r"
    train(config(data, out, iters=3, until=1))
    for args, expect in [
        (("--patch", "24"), "differs from the resumed run's 16"),
        (("--teacher", "x.pth"), "drop --teacher"),
        (("--fft-weight", "0.1"), "loss weights belong to the run"),
        (("--fit-head",), "drop --fit-head"),
    ]:
        code, line = _run("--resume", str(out), *args, capsys=capsys)
        assert code == 2 and expect in line, line
    code, line = _run("--data", str(data), *TINY_ARGS, "-o", str(out), capsys=capsys)
    assert code == 2 and "already holds a training run" in line


# -- quantization-aware training (--qat) -------------------------------------------------------


def test_fake_quant_is_srx_quantizes_rounding_with_a_straight_through_gradient():
    from srx.train.qat import fake_quant, weight_scale

    s = torch.tensor(0.1)
    x = torch.tensor([-20.0, -12.86, -0.04, 0.0, 0.05, 0.26, 12.7, 12.76, 30.0], requires_grad=True)
    y = fake_quant(x, s)
    expect = torch.clamp(torch.round(x.detach() / s), -128, 127) * s
    torch.testing.assert_close(y.detach(), expect)
    y.sum().backward()
    # 1 inside [-128 s, 127 s], 0 where clipped.
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    w = torch.randn(4, 3, 3, 3)
    ws = weight_scale(w)
    assert torch.allclose(ws.flatten(), w.abs().amax(dim=(1, 2, 3)) / 127)


def test_qat_run_keeps_plain_checkpoints_and_resumes_exactly(data, tmp_path):
    donor = build_model("safmn", 4, **TINY, seed=7)
    save_file(donor.state_dict(), str(tmp_path / "donor.safetensors"))
    kw = dict(qat=True, init=str(tmp_path / "donor.safetensors"), iters=6, lr=1e-4)
    straight = train(config(data, tmp_path / "straight", **kw))
    ranges = straight.meta["qat"]["ranges"]
    convs = [n for n, m in donor.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert sorted(ranges) == sorted(convs) and all(a > 0 for a in ranges.values())
    model = load_model(tmp_path / "straight" / "model.safetensors")  # plain names: no QAT wrapper saved
    assert set(model.state_dict()) == set(donor.state_dict())
    train(config(data, tmp_path / "staged", **kw, until=2))
    from srx.train.loop import resumed_config

    saved = json.loads((tmp_path / "staged" / "model.json").read_text())
    resumed = train(resumed_config(saved["config"], {}), resume=tmp_path / "staged")
    assert resumed.meta["qat"]["ranges"] == ranges
    a = load_file(tmp_path / "straight" / "resume.safetensors")
    b = load_file(tmp_path / "staged" / "resume.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_qat_fake_quantizes_the_forward(data, tmp_path):
    """The QAT network's output is the network with INT8-rounded conv inputs and weights."""
    from srx.train.qat import attach, calibrate

    model = build_model("safmn", 4, **TINY, seed=3)
    x = fixed_batch(data)[0][:2]
    with torch.no_grad():
        ref = model(x)
    ranges = calibrate(model, x, seed=0)
    attach(model, ranges)
    with torch.no_grad():
        q = model(x)
    diff = (q - ref).abs()
    assert 0 < diff.mean() < 0.05 * ref.abs().mean()  # rounded, but the same network
