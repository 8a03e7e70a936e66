"""srx.modelref: the one resolver of "which model did the user mean" (issue 24), without torch."""

from __future__ import annotations

import pytest

from srx.errors import BadInput
from srx.modelref import ModelRef, exported_file_ref, is_shipped, resolve_model_ref


def test_nothing_named_is_the_default():
    ref = resolve_model_ref(None, None, scale=2)
    assert ref == ModelRef("default", scale=2) and not ref.named and not ref.is_file


def test_model_takes_a_checkpoint_or_a_shipped_name_as_weights():
    assert resolve_model_ref("net.pth") == ModelRef("checkpoint", "net.pth")
    assert resolve_model_ref(None, "team15") == ModelRef("shipped", "team15")
    assert resolve_model_ref("default", param_key="params_ema") == ModelRef(
        "shipped", "default", param_key="params_ema"
    )


def test_a_file_of_a_shipped_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert is_shipped("team15")
    (tmp_path / "team15").write_bytes(b"")
    assert not is_shipped("team15")
    assert not is_shipped("team15.onnx")


def test_two_checkpoints_are_refused():
    with pytest.raises(BadInput, match=r"--model a\.pth is a checkpoint and so is --weights b\.pth"):
        resolve_model_ref("a.pth", "b.pth")


def test_an_exported_file_keeps_its_weights(tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"")
    assert resolve_model_ref(str(onnx), "net.pth", scale=4) == ModelRef("onnx", str(onnx), "net.pth", 4)
    assert resolve_model_ref(str(engine)).kind == "engine"
    assert exported_file_ref(onnx).is_file


def test_a_missing_or_unknown_file_is_one_clear_error(tmp_path):
    with pytest.raises(BadInput, match="does not exist or is not a file: check the path") as e:
        resolve_model_ref(str(tmp_path / "gone.onnx"))
    assert e.value.exit_code == 2
    odd = tmp_path / "m.xyz"
    odd.write_bytes(b"")
    with pytest.raises(BadInput, match=r"unknown model file type \.xyz; give an \.onnx or engine"):
        resolve_model_ref(str(odd))


def test_eval_baselines_and_any_existing_file_as_a_checkpoint(tmp_path):
    baselines = ("bicubic", "bicubic-rgb")
    assert resolve_model_ref("bicubic-rgb", baselines=baselines).kind == "baseline"
    assert resolve_model_ref("team15", baselines=baselines).kind == "shipped"
    odd = tmp_path / "net.weights"
    odd.write_bytes(b"")
    assert resolve_model_ref(str(odd), baselines=baselines) == ModelRef("checkpoint", str(odd))
    with pytest.raises(BadInput, match=r"is neither 'bicubic' nor an existing file \(nor a shipped network: default"):
        resolve_model_ref(str(tmp_path / "gone.pth"), baselines=baselines)


def test_unknown_kinds_are_a_programming_error():
    with pytest.raises(ValueError, match="not one of"):
        ModelRef("file")


def test_a_command_without_checkpoints_names_only_exported_files(tmp_path):
    with pytest.raises(BadInput, match=r"does not exist or is not a file: give an srx \.onnx or \.engine$"):
        exported_file_ref(tmp_path / "gone.onnx", checkpoints=False)
    pth = tmp_path / "m.pth"
    pth.write_bytes(b"")
    with pytest.raises(BadInput, match=r"m\.pth: unknown model file type \.pth; give an srx \.onnx or \.engine file$"):
        exported_file_ref(pth, checkpoints=False)
