"""What a build does per TensorRT version, and optimisation profiles (pure logic, no TensorRT)."""

from __future__ import annotations

import pytest

from srx.errors import BadInput
from srx.runtime.profile import Profile, make_profile, parse_batch
from srx.runtime.trt import parse_version, plan_build
from srx.sizes import Size
from srx.spec import ModelSpec

DYN = ["batch", 3, "height", "width"]


def spec(min_size: int = 16, multiple: int = 1) -> ModelSpec:
    return ModelSpec("safmn-ntire23", 4, 36, 8, 2.0, 237_000, min_size, size_multiple=multiple)


@pytest.mark.parametrize(
    ("version", "precision", "onnx", "strong", "net", "flags"),
    [
        ((8, 6, 2), "fp32", "fp32", False, ("EXPLICIT_BATCH",), ()),
        ((8, 6, 2), "fp16", "fp32", False, ("EXPLICIT_BATCH",), ("FP16", "OBEY_PRECISION_CONSTRAINTS")),
        ((8, 6, 2), "int8", "int8-fp32", False, ("EXPLICIT_BATCH",), ("INT8", "FP16", "OBEY_PRECISION_CONSTRAINTS")),
        ((9, 1, 0), "fp16", "fp16", True, ("STRONGLY_TYPED",), ()),
        ((10, 3, 0), "fp16", "fp16", True, ("STRONGLY_TYPED",), ()),
        ((10, 3, 0), "int8", "int8", True, ("STRONGLY_TYPED",), ()),
        ((11, 0, 0), "fp16", "fp16", True, (), ()),
        ((11, 4, 1), "int8", "int8", True, (), ()),
    ],
)
def test_enterprise_plans(version, precision, onnx, strong, net, flags):
    p = plan_build("tensorrt", version, precision)
    assert (p.onnx, p.strongly_typed, p.network_flags, p.builder_flags) == (onnx, strong, net, flags)
    assert p.pin_fp32_layers == (not strong and precision != "fp32")
    assert p.clear_flags == (("TF32",) if precision == "fp32" else ())
    assert p.timing_cache
    assert p.max_opset == (17 if version < (9, 1) else None)


def test_tensorrt_11_never_uses_removed_flags():
    for precision in ("fp32", "fp16", "int8"):
        p = plan_build("tensorrt", (11, 2, 0), precision)
        assert not {"FP16", "INT8", "OBEY_PRECISION_CONSTRAINTS"} & set(p.builder_flags)


def test_rtx_plan():
    p = plan_build("tensorrt-rtx", (1, 7, 1), "int8")
    assert p.strongly_typed and p.onnx == "int8" and p.network_flags == ("STRONGLY_TYPED",) and not p.timing_cache
    with pytest.raises(BadInput, match="no DLA"):
        plan_build("tensorrt-rtx", (1, 7, 1), "fp16", dla_core=0)
    with pytest.raises(BadInput, match="does not run on Jetson"):
        plan_build("tensorrt-rtx", (1, 7, 1), "fp16", target="jetson")


def test_dla_plans():
    p = plan_build("tensorrt", (10, 3, 0), "fp16", dla_core=1, target="jetson")
    assert not p.strongly_typed and p.onnx == "fp32" and p.dla_core == 1
    assert set(p.builder_flags) == {"FP16", "OBEY_PRECISION_CONSTRAINTS", "GPU_FALLBACK"} and p.pin_fp32_layers
    with pytest.raises(BadInput, match="FP16 or INT8 only"):
        plan_build("tensorrt", (10, 3, 0), "fp32", dla_core=0)
    with pytest.raises(BadInput, match="use --fp16 with --dla-core"):
        plan_build("tensorrt", (10, 3, 0), "int8", dla_core=0)
    with pytest.raises(BadInput, match=r"11\.4\.1"):
        plan_build("tensorrt", (11, 2, 0), "fp16", dla_core=0)
    q = plan_build("tensorrt", (11, 4, 1), "fp16", dla_core=0)
    assert q.strongly_typed and q.builder_flags == ("GPU_FALLBACK",)


def test_old_tensorrt_and_unknown_names():
    with pytest.raises(BadInput, match="too old"):
        plan_build("tensorrt", (8, 5, 3), "fp16")
    with pytest.raises(BadInput, match="unknown precision"):
        plan_build("tensorrt", (10, 3), "bf16")
    assert parse_version("10.3.0.30") == (10, 3, 0, 30) and parse_version("1.7.1.116") == (1, 7, 1, 116)
    assert parse_version("") == (0,)


def test_default_profile_is_64x64_to_1080p_tuned_for_360p():
    p = make_profile(spec(), DYN)
    assert (p.min, p.opt, p.max, p.batch) == (Size(64, 64), Size(640, 360), Size(1920, 1080), (1, 1, 1))
    assert p.shapes() == ((1, 3, 64, 64), (1, 3, 360, 640), (1, 3, 1080, 1920))


def test_defaults_give_way_to_given_sizes():
    p = make_profile(spec(), DYN, max_size="48x40")
    assert (p.min, p.opt, p.max) == (Size(48, 40), Size(48, 40), Size(48, 40))
    p = make_profile(spec(), DYN, min_size="2560x1440")
    assert p.max == Size(2560, 1440) and p.opt == Size(2560, 1440)
    p = make_profile(spec(), DYN, min_size="17x23", max_size="200x100")
    assert p.opt == Size(200, 100)  # 640x360 clamped into the range


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"min_size": "8x8"}, "below this model's minimum input 16x16"),
        ({"min_size": "64x64", "max_size": "32x32"}, "larger than --max"),
        ({"min_size": "64x64", "max_size": "200x200", "opt_size": "300x100"}, "outside"),
        ({"min_size": "64x0"}, "zero side"),
        ({"batch": "4:2:8"}, "MIN <= OPT <= MAX"),
        ({"batch": "x"}, "give N"),
    ],
)
def test_bad_profiles(kw, message):
    with pytest.raises(BadInput, match=message):
        make_profile(spec(), DYN, **kw)


def test_size_multiple_and_static_onnx():
    with pytest.raises(BadInput, match="multiple of 8"):
        make_profile(spec(8, multiple=8), DYN, min_size="20x20")
    p = make_profile(spec(), [1, 3, 180, 320])
    assert p.static and p.min == Size(320, 180)
    with pytest.raises(BadInput, match="static input of 320x180"):
        make_profile(spec(), [1, 3, 180, 320], max_size="640x360")
    with pytest.raises(BadInput, match="fixed batch of 1"):
        make_profile(spec(), [1, 3, "height", "width"], batch="1:2:4")


def test_dynamic_batch_and_dla():
    assert parse_batch("1:4:8") == (1, 4, 8) and parse_batch("2") == (2, 2, 2) and parse_batch(None) is None
    assert make_profile(spec(), DYN, batch="1:2:4").shapes()[2][0] == 4
    with pytest.raises(BadInput, match="static shape"):
        make_profile(spec(), DYN, dla=True)
    with pytest.raises(BadInput, match="must be equal"):
        make_profile(spec(), DYN, min_size="64x64", max_size="640x360", dla=True)
    p = make_profile(spec(), DYN, min_size="640x360", opt_size="640x360", max_size="640x360", dla=True)
    assert p.static
    assert Profile.from_dict(p.to_dict()) == p


def test_precision_flags_against_the_onnx():
    from srx.engines.build import resolve_precision

    assert resolve_precision("fp32", None, None) == "fp32"
    assert resolve_precision("int8", None, None) == "int8"
    assert resolve_precision("int8", "int8", None) == "int8"
    assert resolve_precision("fp32", "int8", "calib") == "int8"
    with pytest.raises(BadInput, match="already INT8"):
        resolve_precision("int8", "int8", "calib")
    with pytest.raises(BadInput, match="already FP16"):
        resolve_precision("fp16", "fp32", None)
    with pytest.raises(BadInput, match="only used with --int8"):
        resolve_precision("fp32", None, "calib")


@pytest.mark.parametrize(("backend", "package"), [("tensorrt", "tensorrt"), ("tensorrt-rtx", "tensorrt-rtx-cu13")])
def test_a_missing_tensorrt_is_a_missing_dependency_for_both_backends(monkeypatch, backend, package):
    """Issue 18: TensorRT raised BadInput and TensorRT-RTX MissingDependency for the same situation."""
    import importlib

    from srx.errors import MissingDependency
    from srx.runtime import trt

    def absent(name: str):
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    monkeypatch.setattr(importlib, "import_module", absent)
    with pytest.raises(MissingDependency, match=f"'{package}', which is not installed") as e:
        trt.import_backend(backend)
    assert e.value.package == package
