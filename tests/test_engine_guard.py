"""The engine guard and the TensorRT session/runner plumbing, on stand-in TensorRT and CUDA.

The guard must refuse before deserialising; the session must copy, run and copy back
through cuda-python and free what it allocated.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx_models import natural_batch, write_onnx
from trt_fakes import FakeCudart, make_trt

from srx.engines.build import engine_from_onnx
from srx.errors import BadInput
from srx.runtime.cudart import Cuda, DeviceInfo
from srx.runtime.sidecar import describe_engine, read_sidecar, sidecar_path
from srx.runtime.trt_session import EngineSession

GPU = DeviceInfo("NVIDIA Fake GPU", "8.9", 24000, 128)


@pytest.fixture
def built(tmp_path):
    """A fake TensorRT 10.3 engine + sidecar built by srx for the 'NVIDIA Fake GPU' (8.9)."""
    trt = make_trt("10.3.0.30")
    engine = tmp_path / "m.engine"
    onnx_path = write_onnx(tmp_path, "safmn-ntire23")
    engine_from_onnx(onnx_path, engine, precision="fp16", backend="tensorrt", trt_module=trt, device=GPU,
                     min_size="16x16", max_size="64x48", batch="1:1:2")  # fmt: skip
    return engine, trt


def session(engine, trt, cudart=None, **kw):
    return EngineSession(engine, backend="tensorrt", trt_module=trt, cuda=Cuda(cudart or FakeCudart()), **kw)


def test_session_runs_and_frees_everything(built):
    engine, trt = built
    rt = FakeCudart()
    x = natural_batch(23, 17, batch=2)
    with session(engine, trt, rt) as s:
        y = s.run(x)
        y2 = s.run(natural_batch(40, 33))  # a larger input grows the buffers
        assert s.spec.arch == "safmn-ntire23"
    np.testing.assert_array_equal(y, x.repeat(4, axis=2).repeat(4, axis=3))  # the fake engine's nearest x4
    assert y2.shape == (1, 3, 160, 132)
    assert not rt.buffers and rt.streams == 0 and len(rt.freed) == 4


def test_input_outside_the_profile_is_refused(built):
    engine, trt = built
    with (
        session(engine, trt) as s,
        pytest.raises(BadInput, match=r"outside this engine.s profile 16x16 \.\. 64x48 .batch 1..2."),
    ):
        s.run(natural_batch(49, 64))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d.update(backend_version="10.7.0.23"),
            r"built with TensorRT 10\.7\.0\.23 but this is TensorRT 10\.3\.0\.30",
        ),
        (
            lambda d: d["device"].update(compute_capability="8.7", name="Orin"),
            r"built on Orin .compute capability 8\.7.",
        ),
        (lambda d: d["device"].update(name="NVIDIA Other GPU"), "built on NVIDIA Other GPU"),
        (lambda d: d.update(backend="tensorrt-rtx"), "built with tensorrt-rtx"),
        (lambda d: d.update(engine_sha256="0" * 64), "does not match its sidecar"),
    ],
)
def test_guard_refuses_before_deserialising(built, change, message):
    engine, trt = built
    side = sidecar_path(engine)
    d = json.loads(side.read_text())
    change(d)
    side.write_text(json.dumps(d))
    before = trt.Runtime.deserialized
    with pytest.raises(BadInput, match=message):
        session(engine, trt).open()
    assert trt.Runtime.deserialized == before


def test_newer_tensorrt_than_the_engine_is_refused(built):
    engine, _ = built
    with pytest.raises(BadInput, match="engines load only in the version that built them"):
        session(engine, make_trt("10.3.1.0")).open()


def test_missing_sidecar_is_refused_unless_unchecked(built):
    engine, trt = built
    sidecar_path(engine).unlink()
    with pytest.raises(BadInput, match=r"has no sidecar m\.engine\.json"):
        session(engine, trt).open()
    with session(engine, trt, check=False) as s:  # explicit opt-out: profile from the engine itself
        assert s.run(natural_batch(20, 20)).shape == (1, 3, 80, 80)
        assert s.profile.max.width == 128


def test_rtx_engine_validity_is_asked(tmp_path):
    trt = make_trt("1.7.1.116", rtx=True)
    engine = tmp_path / "r.engine"
    engine_from_onnx(write_onnx(tmp_path, "safmnpp"), engine, precision="fp16", backend="tensorrt-rtx", trt_module=trt)
    side = read_sidecar(engine)
    assert side["device"]["built_on"] == "cpu (ahead of time)" and side["device"]["name"] is None
    trt.Runtime.validity = trt.EngineValidity.INVALID
    s = EngineSession(engine, backend="tensorrt-rtx", trt_module=trt, cuda=Cuda(FakeCudart(cc=(9, 0))))
    with pytest.raises(BadInput, match=r"cannot run on NVIDIA Fake GPU .compute capability 9\.0.*unsupported cc"):
        s.open()
    trt.Runtime.validity = None
    with EngineSession(engine, backend="tensorrt-rtx", trt_module=trt, cuda=Cuda(FakeCudart())) as s:
        assert s.run(natural_batch(70, 90)).shape == (1, 3, 280, 360)


def test_rtx_explicit_targets_are_checked(tmp_path):
    trt = make_trt("1.7.1.116", rtx=True)
    engine = tmp_path / "r.engine"
    engine_from_onnx(write_onnx(tmp_path, "safmnpp"), engine, precision="fp16", backend="tensorrt-rtx",
                     trt_module=trt, rtx_targets=["8.6"])  # fmt: skip
    assert trt.Builder.last.config.num_compute_capabilities == 1
    with pytest.raises(BadInput, match=r"built for compute capabilities 8\.6"):
        EngineSession(engine, backend="tensorrt-rtx", trt_module=trt, cuda=Cuda(FakeCudart(cc=(8, 9)))).open()


def test_runner_through_the_registry(built, monkeypatch):
    engine, trt = built
    import srx.runtime.cudart as cudart
    import srx.runtime.trt_session as ts
    from srx.runtime.source import ModelSource
    from srx.runtime.tensorrt_runner import TensorRTRunner

    monkeypatch.setattr(ts, "import_backend", lambda backend: trt)
    monkeypatch.setattr(cudart, "import_cudart", lambda: FakeCudart())
    source = ModelSource.from_file(engine)
    runner = TensorRTRunner(source, "cuda")
    x = natural_batch(30, 20)
    with runner:
        assert runner.precision == "fp16"
        y = runner.run(x)
        t = runner.timer()
        t.start()
        runner.execute(runner.stage(x))
        t.stop()
        assert t.elapsed_ms() == 1.5
        assert runner.describe()["built_with"] == "10.3.0.30"
    assert y.shape == (1, 3, 120, 80)


def test_describe_engine_for_srx_info(built):
    engine, _ = built
    d = describe_engine(engine)
    assert d["kind"] == "engine" and d["details"]["precision"] == "fp16"
    assert "NVIDIA Fake GPU, compute capability 8.9" in d["details"]["device"]
    sidecar_path(engine).unlink()
    assert "has no sidecar" in describe_engine(engine)["details"]["sidecar"]


def test_each_staged_input_is_run_from_its_own_buffer(built, monkeypatch):
    """srx bench stages every input before timing; each run must read its own input (with one
    shared input buffer every run read the last input staged, and accuracy compared the wrong
    output with each reference)."""
    engine, trt = built
    import srx.runtime.cudart as cudart
    import srx.runtime.trt_session as ts
    from srx.runtime.source import ModelSource
    from srx.runtime.tensorrt_runner import TensorRTRunner

    rt = FakeCudart()
    monkeypatch.setattr(ts, "import_backend", lambda backend: trt)
    monkeypatch.setattr(cudart, "import_cudart", lambda: rt)
    runner = TensorRTRunner(ModelSource.from_file(engine), "cuda")
    xs = [natural_batch(30, 20, seed=i) for i in range(3)]
    with runner:
        staged = [runner.stage(x) for x in xs]
        for x, st in [*zip(xs, staged, strict=True), (xs[0], staged[0])]:
            np.testing.assert_array_equal(runner.fetch(runner.execute(st)), x.repeat(4, axis=2).repeat(4, axis=3))
        assert np.array_equal(runner.run(xs[1]), xs[1].repeat(4, axis=2).repeat(4, axis=3))
    assert not rt.buffers and rt.streams == 0


def test_an_engine_built_for_other_batches_is_skipped_with_the_reason(built, monkeypatch):
    import dataclasses

    from srx.bench.engine import BenchConfig, run_bench
    from srx.runtime.base import Availability
    from srx.runtime.registry import BACKENDS
    from srx.runtime.source import ModelSource
    from srx.runtime.tensorrt_runner import TensorRTRunner

    engine, _trt = built
    source = ModelSource.from_file(engine)
    runner = TensorRTRunner(source, "cuda")
    assert runner.unsupported_batch(1) == runner.unsupported_batch(2) == ""
    reason = "this engine was built for batches 1 to 2: rebuild it with srx build-engine --batch 4 (or MIN:OPT:MAX)"
    assert runner.unsupported_batch(4) == reason
    monkeypatch.setitem(
        BACKENDS, "tensorrt", dataclasses.replace(BACKENDS["tensorrt"], check=lambda d, s: Availability.yes())
    )
    r = run_bench(source, BenchConfig(16, 16, "cuda", ["tensorrt"], runs=1, warmup=0, batch=4))
    row = next(x for x in r.results if x["backend"] == "tensorrt")
    assert row["status"] == "skipped" and row["reason"] == reason
