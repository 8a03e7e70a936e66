"""Architecture detection, strict loading and the model descriptor."""

from __future__ import annotations

import itertools

import pytest
import torch
from conftest import REAL_CHECKPOINTS, weight_path

from srx.errors import BadInput
from srx.models import ARCHS, build_model, default_model, detect_arch, load_model, model_from_state_dict, seeded_model
from srx.models.layers import (
    nearest_indices,
    portable_adaptive_max_pool,
    portable_nearest_resize,
)

CONFIGS = [
    ("safmn", 4, {}),  # paper x4
    ("safmn", 2, {}),
    ("safmn", 3, {}),
    ("safmn", 4, {"dim": 128, "n_blocks": 16}),  # SAFMN-L
    ("safmn", 2, {"dim": 48, "n_blocks": 12}),  # c48n12
    ("safmn", 3, {"dim": 16, "n_blocks": 1, "ffn_scale": 1.5}),
    ("safmn-ntire23", 4, {}),
    ("safmn-ntire23", 2, {"dim": 24, "n_blocks": 3}),
    ("safmnpp", 4, {}),
    ("safmnpp", 3, {"dim": 24, "n_blocks": 2, "ffn_scale": 2.0}),
    ("safmnpp-light", 4, {}),
    ("safmnpp-light", 2, {"dim": 16, "n_blocks": 1}),
]


def test_paper_model_has_the_papers_parameter_count():
    assert default_model(4).spec.params == 239_520


def test_seeded_model_is_labelled_untrained_and_deterministic():
    a, b = seeded_model(4), seeded_model(4)
    assert not a.spec.trained and "untrained: for latency only" in a.spec.label
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize(("arch", "scale", "cfg"), CONFIGS, ids=lambda v: str(v))
def test_round_trip_save_detect_load(tmp_path, arch, scale, cfg):
    model = build_model(arch, scale, **cfg, seed=7)
    path = tmp_path / "m.pth"
    torch.save({"params": model.state_dict()}, path)
    loaded = load_model(path)
    assert loaded.spec.arch == arch and loaded.spec.scale == scale
    for key in ("dim", "n_blocks", "ffn_scale", "params"):
        assert getattr(loaded.spec, key) == getattr(model.spec, key), key
    x = torch.rand(1, 3, 19, 23) if loaded.spec.min_size <= 16 else torch.rand(1, 3, 33, 35)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded(x).shape[-2:] == (x.shape[-2] * scale, x.shape[-1] * scale)


def test_safetensors_and_bare_state_dict_load(tmp_path):
    from safetensors.torch import save_file

    model = build_model("safmnpp", 4, seed=3)
    save_file(model.state_dict(), tmp_path / "m.safetensors")
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "dp.pth")
    for name in ("m.safetensors", "bare.pth", "dp.pth"):
        m = load_model(tmp_path / name)
        assert m.spec.arch == "safmnpp"
        assert torch.equal(m.to_feat.weight, model.to_feat.weight)


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(REAL_CHECKPOINTS))
def test_real_checkpoints_load_strictly_and_are_detected(name):
    arch, expected = REAL_CHECKPOINTS[name]
    m = load_model(weight_path(name))
    assert m.spec.arch == arch and m.spec.scale == 4 and m.spec.trained
    for key, value in expected.items():
        assert getattr(m.spec, key) == value, key
    assert len(m.spec.source_sha256) == 64


@pytest.mark.shared
def test_param_key_follows_basicsr_and_can_be_overridden():
    m = load_model(weight_path("team23_safmnpp.pth"))
    ema = load_model(weight_path("team23_safmnpp.pth"), param_key="params_ema")
    assert not torch.equal(m.to_feat.weight, ema.to_feat.weight)
    with pytest.raises(BadInput, match="no key 'nope'"):
        load_model(weight_path("team23_safmnpp.pth"), param_key="nope")


def test_missing_and_unexpected_keys_are_named():
    sd = build_model("safmn", 4).state_dict()
    partial = {k: v for k, v in sd.items() if k != "feats.3.norm2.bias"}
    with pytest.raises(BadInput, match=r"missing 1 key\(s\): feats\.3\.norm2\.bias"):
        model_from_state_dict(partial)
    extra = {**sd, "feats.0.safm.extra.weight": torch.zeros(1)}
    with pytest.raises(BadInput, match=r"unexpected 1 key\(s\): feats\.0\.safm\.extra\.weight"):
        model_from_state_dict(extra)


def test_foreign_state_dict_and_wrong_scale_are_refused():
    foreign = {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(10)}
    with pytest.raises(BadInput, match="not a SAFMN-family checkpoint"):
        model_from_state_dict(foreign)
    sd = build_model("safmn", 4).state_dict()
    with pytest.raises(BadInput, match="--scale 2 contradicts"):
        model_from_state_dict(sd, scale=2)
    with pytest.raises(BadInput, match="does not match --arch safmnpp"):
        model_from_state_dict(sd, arch="safmnpp")


def test_detection_is_unambiguous():
    for arch in ARCHS:
        detected = detect_arch(build_model(arch, 4).state_dict())
        assert detected is not None and detected[0] == arch


@pytest.mark.parametrize("factor", [2, 4, 8, 16])
def test_portable_adaptive_max_pool_equals_pytorch(factor):
    g = torch.Generator().manual_seed(factor)
    for h, w in itertools.product([factor, factor + 1, 2 * factor - 1, 17, 23, 61, 180], [factor, 33, 97, 320]):
        if h < factor or w < factor:
            continue
        x = torch.randn(2, 3, h, w, generator=g)
        ref = torch.nn.functional.adaptive_max_pool2d(x, (h // factor, w // factor))
        assert torch.equal(portable_adaptive_max_pool(x, factor), ref), (h, w)


def test_portable_nearest_resize_equals_pytorch_where_onnx_resize_does_not():
    # 28 -> 114 is a size where ONNX Resize(nearest, asymmetric, floor) picks another row.
    for n_in, n_out in [(28, 114), (42, 171), (22, 180), (40, 320), (1, 9), (7, 7)]:
        x = torch.arange(n_in, dtype=torch.float32).reshape(1, 1, n_in, 1).repeat(1, 1, 1, 2)
        ref = torch.nn.functional.interpolate(x, size=(n_out, 2), mode="nearest")
        assert torch.equal(portable_nearest_resize(x, (n_out, 2)), ref)
    assert nearest_indices(28, 114)[57].item() == 14


def test_input_size_check():
    spec = build_model("safmn-ntire23", 4).spec
    spec.check_input_size(16, 16)
    with pytest.raises(BadInput, match="smaller than this model's minimum of 16x16"):
        spec.check_input_size(15, 200)
