"""Engines from elsewhere, through the real CLI code path, on stand-in TensorRT and CUDA.

No GPU here, so TensorRT and the CUDA runtime are the test fakes (tests/trt_fakes.py) and
the availability checks are told a GPU is present; everything from `srx upscale` /
`srx bench` down to the engine guard is srx's own code. An engine whose sidecar names
another GPU, another TensorRT, or another file must be refused before deserialising, with
one line, and nothing written.
"""

from __future__ import annotations

import json

import pytest
from conftest import assert_one_line_error
from onnx_models import write_onnx
from robust import files_under, run_inprocess, save_image
from trt_fakes import FakeCudart, make_trt

from srx.engines.build import engine_from_onnx
from srx.runtime.cudart import DeviceInfo
from srx.runtime.sidecar import sidecar_path

HERE = DeviceInfo("NVIDIA Fake GPU", "8.9", 24000, 128)


@pytest.fixture
def gpu_here(monkeypatch):
    """TensorRT 10.3 and one 'NVIDIA Fake GPU' (8.9), as far as srx can tell."""
    # Imported before the patches below: it binds has_cuda at import, and a module first
    # imported under the patch would keep the fake GPU for every later test.
    import srx.bench.engine  # noqa: F401
    import srx.runtime.cudart as cudart
    import srx.runtime.device as device
    import srx.runtime.registry as registry
    import srx.runtime.trt_session as ts

    trt = make_trt("10.3.0.30")
    monkeypatch.setattr(ts, "import_backend", lambda backend: trt)
    monkeypatch.setattr(cudart, "import_cudart", lambda: FakeCudart())
    monkeypatch.setattr(registry, "has_cuda", lambda: True)
    monkeypatch.setattr(device, "has_cuda", lambda: True)
    real_installed = registry._installed
    monkeypatch.setattr(registry, "_installed", lambda m: m in ("tensorrt", "cuda.bindings") or real_installed(m))
    return trt


@pytest.fixture
def engine(tmp_path, gpu_here):
    path = tmp_path / "models" / "m.engine"
    path.parent.mkdir()
    onnx_path = write_onnx(path.parent, "safmn")  # x4: the fake engine upscales x4
    engine_from_onnx(onnx_path, path, precision="fp16", backend="tensorrt", trt_module=gpu_here, device=HERE,
                     min_size="16x16", max_size="96x96")  # fmt: skip
    _edit_sidecar(path, lambda d: d["spec"].update(trained=True))  # upscale warns about an untrained model
    return path


def _edit_sidecar(engine, change):
    side = sidecar_path(engine)
    d = json.loads(side.read_text())
    change(d)
    side.write_text(json.dumps(d))


CHANGES = {
    "other-gpu": (lambda d: d["device"].update(name="Orin (nvgpu)", compute_capability="8.7"), "built on Orin"),
    "other-tensorrt": (lambda d: d.update(backend_version="10.7.0.23"), "built with TensorRT 10.7.0.23"),
    "replaced-engine": (lambda d: d.update(engine_sha256="0" * 64), "does not match its sidecar"),
    "other-backend": (lambda d: d.update(backend="tensorrt-rtx"), "built with tensorrt-rtx"),
}


COMMANDS = ("upscale", "bench")


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
@pytest.mark.parametrize("command", COMMANDS)
def test_foreign_engine_is_refused_before_deserialising(tmp_path, engine, gpu_here, change, command):
    edit, expect = CHANGES[change]
    _edit_sidecar(engine, edit)
    out = tmp_path / "out"
    out.mkdir()
    if command == "upscale":
        img = save_image(tmp_path / "in.png", 24, 20)
        args = ["upscale", str(img), "-o", str(out / "o.png"), "--model", str(engine), "--backend", "tensorrt"]
    else:
        args = ["bench", "--model", str(engine), "--backends", "tensorrt", "--input", "24x20", "--runs", "1"]
    before = gpu_here.Runtime.deserialized
    result = run_inprocess(*args, "--device", "cuda", "--json", str(out / "r.json"))
    line = assert_one_line_error(result, 2)
    assert expect in line and ("rebuild" in line or "run it with" in line), line
    assert gpu_here.Runtime.deserialized == before, "the engine was deserialised"
    assert files_under(out) == set()


def test_the_same_engine_runs_when_its_sidecar_fits(tmp_path, engine):
    """The control: untouched, the engine passes the guard and upscales."""
    img = save_image(tmp_path / "in.png", 24, 20)
    out = tmp_path / "o.png"
    args = ["upscale", str(img), "-o", str(out), "--model", str(engine), "--backend", "tensorrt", "--device", "cuda"]
    result = run_inprocess(*args)
    assert result.returncode == 0, result.stderr
    assert out.is_file()


def test_a_sidecar_named_like_the_engine_stem_is_refused_the_same_way_everywhere(tmp_path, engine):
    """`m.json` is not `m.engine.json`: every command refuses the engine with the same line, and
    `srx info` shows that line as the reason it has no sidecar (issue 18: srx once read `m.json`
    for the model's spec, then refused the engine deeper down, differently per command)."""
    sidecar_path(engine).rename(engine.with_suffix(".json"))
    img = save_image(tmp_path / "in.png", 24, 20)
    data = tmp_path / "data"
    data.mkdir()
    save_image(data / "a.png", 96, 96)
    out = tmp_path / "out"
    out.mkdir()
    commands = {
        "upscale": ["upscale", str(img), "-o", str(out / "o.png"), "--model", str(engine)],
        "bench": ["bench", "--model", str(engine), "--input", "24x20", "--runs", "1"],
        "eval": ["eval", "--dataset", str(data), "--model", str(engine)],
    }
    lines = {name: assert_one_line_error(run_inprocess(*args, "--json", str(out / "r.json")), 2)
             for name, args in commands.items()}  # fmt: skip
    assert len(set(lines.values())) == 1, lines
    assert "has no sidecar m.engine.json" in lines["bench"]
    info = run_inprocess("info", str(engine), "--json", "-")
    assert info.returncode == 0, info.stderr
    assert "srx: error: " + json.loads(info.stdout)["details"]["sidecar"] == lines["bench"]
    assert files_under(out) == set()


@pytest.fixture
def rtx_engine(tmp_path, monkeypatch):
    """An engine built with (stand-in) TensorRT-RTX, whose spec says trained so eval scores it."""
    import srx.runtime.registry as registry

    rtx = make_trt("1.2.0.54", rtx=True)
    path = tmp_path / "models" / "m.fp16.engine"
    path.parent.mkdir()
    engine_from_onnx(write_onnx(path.parent, "safmn"), path, precision="fp16", backend="tensorrt-rtx",
                     trt_module=rtx, device=None, min_size="16x16", max_size="96x96")  # fmt: skip
    _edit_sidecar(path, lambda d: d["spec"].update(trained=True))
    real_installed = registry._installed
    monkeypatch.setattr(registry, "_installed", lambda m: m in ("tensorrt_rtx", "cuda.bindings") or real_installed(m))
    return path, rtx


def test_an_rtx_engine_runs_on_tensorrt_rtx_in_every_command(tmp_path, rtx_engine, monkeypatch):
    """Issue 16: eval chose TensorRT for a TensorRT-RTX engine that bench and upscale ran on TensorRT-RTX."""
    import srx.runtime.cudart as cudart
    import srx.runtime.device as device
    import srx.runtime.registry as registry
    import srx.runtime.trt_session as ts

    engine, rtx = rtx_engine
    monkeypatch.setattr(ts, "import_backend", lambda backend: rtx)
    monkeypatch.setattr(cudart, "import_cudart", lambda: FakeCudart())
    monkeypatch.setattr(registry, "has_cuda", lambda: True)
    monkeypatch.setattr(device, "has_cuda", lambda: True)
    img = save_image(tmp_path / "in.png", 24, 20)
    data = tmp_path / "data"
    data.mkdir()
    save_image(data / "a.png", 96, 96)
    up = run_inprocess("upscale", str(img), "-o", str(tmp_path / "o.png"), "--model", str(engine), "--json", "-")
    ev = run_inprocess("eval", "--dataset", str(data), "--model", str(engine), "--json", "-")
    be = run_inprocess("bench", "--model", str(engine), "--input", "24x20", "--runs", "1", "--warmup", "0",
                       "--device", "cuda", "--json", "-")  # fmt: skip
    for r in (up, ev, be):
        assert r.returncode == 0, r.stderr
    assert json.loads(up.stdout)["backend"] == "tensorrt-rtx" and json.loads(ev.stdout)["backend"] == "tensorrt-rtx"
    rows = {r["backend"]: r for r in json.loads(be.stdout)["results"]}
    assert rows["tensorrt-rtx"]["status"] == "ok" and rows["tensorrt-rtx"]["precision"] == "fp16"
    assert (
        rows["tensorrt"]["reason"]
        == f"{engine} was built with tensorrt-rtx, not tensorrt: run it with the tensorrt-rtx backend"
    )


def test_without_a_gpu_eval_says_so_for_the_backend_that_built_the_engine(tmp_path, rtx_engine, monkeypatch):
    import srx.runtime.registry as registry

    engine, _ = rtx_engine
    monkeypatch.setattr(registry, "has_cuda", lambda: False)
    data = tmp_path / "data"
    data.mkdir()
    save_image(data / "a.png", 96, 96)
    line = assert_one_line_error(run_inprocess("eval", "--dataset", str(data), "--model", str(engine)), 2)
    assert "backend tensorrt-rtx cannot run: needs a CUDA GPU; none is visible" in line, line
