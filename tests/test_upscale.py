"""Tiling (exact on the pooling grid, seamless elsewhere) and srx upscale end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, run_srx
from PIL import Image

from srx.bench.inputs import synthetic_image
from srx.errors import BadInput
from srx.models import build_model
from srx.tiling import context, default_overlap, plan_tiling, tiled_apply

TINY = {
    "safmn": {"dim": 8, "n_blocks": 1},
    "safmnpp": {"dim": 9, "n_blocks": 1},
    "safmnpp-light": {"dim": 8, "n_blocks": 1},
    "safmn-ntire23": {"dim": 8, "n_blocks": 1},
}


def _forward(model):
    def f(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return f


def _tiled(lr, forward, scale, plan):
    _, h, w = lr.shape
    out = np.full((h * scale, w * scale, 3), np.nan, np.float32)

    def emit(y0, rows):
        assert np.isnan(out[y0 : y0 + rows.shape[0]]).all(), "rows emitted twice"
        out[y0 : y0 + rows.shape[0]] = rows

    n = tiled_apply(lr, forward, scale, plan, emit)
    assert not np.isnan(out).any(), "rows never emitted"
    return out, n


def test_paper_contexts():
    def spec(arch, n):
        return build_model(arch, 4, n_blocks=n).spec

    assert context(spec("safmn", 8)) == 130 and default_overlap(spec("safmn", 8)) == 136
    assert context(spec("safmnpp", 6)) == 128 and context(spec("safmnpp-light", 2)) == 44
    assert context(spec("safmn-ntire23", 8)) == 258


@pytest.mark.parametrize("arch", ["safmn", "safmnpp", "safmnpp-light"])
def test_aligned_tiles_reproduce_the_whole_image(arch):
    model = build_model(arch, 2, **TINY[arch], seed=5)
    lr = synthetic_image(88, 120, 2)  # multiples of 8
    plan = plan_tiling(model.spec, 88, 120, 16, None)
    assert plan.exact and plan.blend == 0 and 16 + 2 * plan.overlap < 88
    whole = _forward(model)(lr[None])[0].transpose(1, 2, 0)
    tiled, n = _tiled(lr, _forward(model), 2, plan)
    assert n == 6 * 8
    assert np.abs(tiled - whole).max() < 1e-5


@pytest.mark.parametrize("arch", ["safmn", "safmnpp"])
def test_context_is_the_receptive_field(arch):
    """An input change further than context(spec) from a pixel never reaches it; at context it can."""
    model = build_model(arch, 2, **TINY[arch], seed=1)
    f = _forward(model)
    ctx = context(model.spec)
    lr = synthetic_image(16, 88, 4)[None]
    base = f(lr)
    reach = 0
    for probe in range(24, 32):  # every position inside an 8-pixel pooling block
        for d in (ctx - 1, ctx, ctx + 1, ctx + 2):
            x = lr.copy()
            x[0, :, :, probe + d] += 5.0
            changed = np.abs(f(x) - base)[0, :, :, 2 * probe : 2 * probe + 2].max()
            if changed > 1e-6:
                reach = max(reach, d)
    assert reach == ctx


def test_blending_is_a_partition_of_unity_on_odd_sizes():
    """With a pixel-local forward, blended tiles must give back exactly the whole-image result."""
    spec = build_model("safmn", 3, **TINY["safmn"]).spec
    plan = plan_tiling(spec, 77, 101, 24, 8)
    assert not plan.exact and plan.blend > 0

    def forward(x):
        return (x * 2.0 - 0.25).repeat(3, axis=2).repeat(3, axis=3)

    lr = synthetic_image(77, 101, 0)
    tiled, _ = _tiled(lr, forward, 3, plan)
    np.testing.assert_allclose(tiled, forward(lr[None])[0].transpose(1, 2, 0), atol=1e-6)


def test_odd_sizes_and_grn_are_blended_and_close():
    for arch, (h, w), tile in [("safmn", (37, 101), 32), ("safmn-ntire23", (32, 160), 16)]:
        model = build_model(arch, 2, **TINY[arch], seed=2)
        plan = plan_tiling(model.spec, h, w, tile, None)
        assert not plan.exact and ("GRN" in plan.reason or "not a multiple" in plan.reason)
        lr = synthetic_image(h, w, 3)
        whole = _forward(model)(lr[None])[0].transpose(1, 2, 0)
        tiled, _ = _tiled(lr, _forward(model), 2, plan)
        assert np.isfinite(tiled).all() and tiled.shape == whole.shape


def test_tile_below_the_minimum_is_refused():
    spec = build_model("safmn", 4, **TINY["safmn"]).spec
    with pytest.raises(BadInput, match="smaller than this model's minimum"):
        plan_tiling(spec, 4000, 3000, 4, None)


# -- the CLI -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "tiny_x2.pth"
    model = build_model("safmn", 2, **TINY["safmn"], seed=9)
    torch.save({"params": model.state_dict()}, path)
    return path, model


def _save(path, h, w, seed=0, mode="RGB"):
    rgb = (synthetic_image(h, w, seed).transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
    Image.fromarray(rgb).convert(mode).save(path)
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def _expected(model, rgb01):
    out = _forward(model)(np.ascontiguousarray(rgb01.transpose(2, 0, 1))[None])[0].transpose(1, 2, 0)
    return np.clip(out, 0, 1) * 255


@pytest.mark.parametrize(
    ("size", "tile", "backend"),
    [
        *[
            (size, tile, b)
            for b in ("torch", "onnxruntime")
            for size, tile in [((45, 61), None), ((80, 96), 16), ((48, 80), 24)]
        ],
        ((45, 61), None, "auto"),
    ],
)
def test_upscale_equals_the_model(tmp_path, tiny_weights, size, tile, backend):
    """Whole and tiled, every CPU backend: <= 1 gray level from the PyTorch model's own output."""
    if backend != "torch":
        pytest.importorskip("onnxruntime")
    weights, model = tiny_weights
    rgb = _save(tmp_path / "in.png", *size)
    args = ["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--weights", str(weights)]
    proc = run_srx(
        *args, "--backend", backend, "--device", "cpu", "--json", "-", *(["--tile", str(tile)] if tile else [])
    )
    assert proc.returncode == 0, proc.stderr
    # auto: OpenVINO FP32 on the CPU where installed, else onnxruntime (the faster exact paths, docs/upscale.md).
    from srx.runtime import check_backend

    auto = "openvino" if check_backend("openvino", "cpu").ok else "onnxruntime"
    assert json.loads(proc.stdout)["backend"] == (auto if backend == "auto" else backend)
    out = np.asarray(Image.open(tmp_path / "out.png"), dtype=np.float32)
    assert out.shape == (size[0] * 2, size[1] * 2, 3)
    assert np.abs(out - _expected(model, rgb)).max() <= 1.0
    if tile:
        assert "exact" in proc.stderr


def test_upscale_keeps_alpha_16bit_gray_and_orientation(tmp_path, tiny_weights):
    weights, _ = tiny_weights
    rgb = (synthetic_image(20, 28, 1).transpose(1, 2, 0) * 65535).astype(np.uint16)
    alpha = np.linspace(0, 65535, 28, dtype=np.uint16)[None].repeat(20, 0)
    from srx.images import write_image

    write_image(tmp_path / "a16.png", np.dstack([rgb, alpha]), bit_depth=16)
    _save(tmp_path / "g.jpg", 20, 28, mode="L")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    Image.fromarray((rgb >> 8).astype(np.uint8)).save(tmp_path / "r.jpg", exif=exif)
    proc = run_srx(
        "upscale", str(tmp_path), "-o", str(tmp_path / "out"), "--weights", str(weights), "--backend", "torch"
    )
    assert proc.returncode == 0, proc.stderr
    from srx.images import read_image

    a = read_image(tmp_path / "out" / "a16.png")
    assert a.bit_depth == 16 and a.alpha is not None and a.rgb.shape == (40, 56, 3)
    assert np.abs(a.alpha[:, 0]).max() < 0.01 and a.alpha[:, -1].min() > 0.99
    g = Image.open(tmp_path / "out" / "g.jpg")
    assert g.mode == "L" and g.size == (56, 40)
    assert Image.open(tmp_path / "out" / "r.jpg").size == (40, 56)


def test_folder_with_bad_files_writes_the_good_ones(tmp_path, tiny_weights):
    weights, _ = tiny_weights
    src = tmp_path / "in"
    src.mkdir()
    _save(src / "good.png", 16, 16)
    (src / "empty.png").write_bytes(b"")
    (src / "text.jpg").write_text("not an image")
    (src / "trunc.png").write_bytes((src / "good.png").read_bytes()[:120])
    proc = run_srx("upscale", str(src), "-o", str(tmp_path / "out"), "--weights", str(weights), "--backend", "torch")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 4 and all(ln.startswith("srx: error: ") for ln in lines) and "Traceback" not in proc.stderr
    assert "3 of 4" in lines[-1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("text", [], "not an image"),
        ("empty", [], "empty file"),
        ("trunc", [], "truncated"),
        ("good", ["--tile", "4"], "smaller than this model's minimum"),
        ("good", ["--backend", "tensort"], "unknown backend 'tensort'"),
        ("good", ["--backend", "onnxruntime-cuda"], "cannot run"),
        ("good", ["-o", "{tmp}/in.png/x.png"], "is a file, not a folder"),
        ("missing", [], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, tiny_weights, setup, args, message):
    weights, _ = tiny_weights
    path = tmp_path / "in.png"
    if setup in ("good", "trunc"):
        _save(path, 24, 24)
    if setup == "trunc":
        path.write_bytes(path.read_bytes()[:100])
    elif setup == "text":
        path.write_text("hello")
    elif setup == "empty":
        path.write_bytes(b"")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = [] if "-o" in args else ["-o", str(tmp_path / "out.png")]
    proc = run_srx("upscale", str(path), *out, "--weights", str(weights), *args)
    assert message in assert_one_line_error(proc, 2)
    assert not (tmp_path / "out.png").exists()


def test_colliding_output_names_are_refused(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        _save(tmp_path / d / "x.png", 16, 16)
    proc = run_srx("upscale", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "out"))
    assert "would both be written" in assert_one_line_error(proc, 2)
