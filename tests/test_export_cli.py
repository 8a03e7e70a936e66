"""`srx export` and `srx info MODEL.onnx` through the real CLI (docs/cli.md#srx-export)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import onnx
import pytest
import torch
from conftest import REPO, assert_one_line_error, run_srx, weight_path
from onnx import TensorProto, helper

from srx.export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from srx.fileio import sha256_file
from srx.models import build_model


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".onnx", ".part") or ".part" in p.name)


def test_default_export_json_and_info(tmp_path):
    proc = run_srx("export", "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert {"onnx", "arch", "scale", "params", "opset", "dynamic", "verify"} <= set(d)
    assert (d["onnx"], d["arch"], d["scale"], d["params"]) == ("safmn_x4.onnx", "safmn", 4, 239_520)
    assert d["opset"] == DEFAULT_OPSET and d["dynamic"] is True and d["trained"] is True  # the trained default
    assert [(v["input"], v["batch"]) for v in d["verify"]] == [("320x180", 1), ("97x61", 2), ("19x8", 1)]
    assert all(0 <= v["max_abs_diff"] <= 1e-4 for v in d["verify"])
    assert d["nodes"] <= d["nodes_before_simplify"]
    assert "srx default (trained on T91+BSD200)" in proc.stderr and "320x180" in proc.stderr

    info = run_srx("info", str(tmp_path / "safmn_x4.onnx"), "--json", "-")
    assert info.returncode == 0, info.stderr
    i = json.loads(info.stdout)
    assert i["kind"] == "onnx" and i["spec"]["arch"] == "safmn" and i["spec"]["trained"] is True
    assert i["onnx"]["dynamic_dims"] == ["batch", "height", "width"] and i["onnx"]["precision"] == "fp32"
    assert i["onnx"]["opset"] == DEFAULT_OPSET and i["onnx"]["nodes"] == d["nodes"]
    assert "batch, height, width" in info.stderr and "srx default (trained on T91+BSD200)" in info.stderr


def test_static_opset17_export_of_another_arch(tmp_path):
    out = tmp_path / "light.onnx"
    args = ["--arch", "safmnpp-light", "--scale", "2", "--static", "--input", "61x37", "--opset", "17"]
    proc = run_srx("export", *args, "-o", str(out), "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["dynamic"] is False and d["opset"] == 17 and d["arch"] == "safmnpp-light" and d["scale"] == 2
    assert [v["input"] for v in d["verify"]] == ["61x37"]
    dims = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 37, 61]


@pytest.mark.shared
def test_export_real_checkpoint_default_name_and_provenance(tmp_path):
    ckpt = weight_path("light_safmnpp.pth")
    proc = run_srx("export", "--weights", str(ckpt), "--scale", "4", "--input", "64x40", "--json", "-", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["onnx"] == "light_safmnpp.onnx" and d["trained"] is True and d["params"] == 66_176
    info = json.loads(run_srx("info", str(tmp_path / "light_safmnpp.onnx"), "--json", "-").stdout)
    assert info["onnx"]["metadata"]["srx.source_sha256"] == sha256_file(ckpt)
    assert info["spec"]["arch"] == "safmnpp-light"


@pytest.mark.shared
def test_export_with_param_key(tmp_path):
    ckpt = weight_path("team23_safmnpp.pth")
    proc = run_srx("export", "--weights", str(ckpt), "--param-key", "params_ema", "--input", "40x24", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "team23_safmnpp.onnx").is_file()


# -- bad input: one line, exit 2, nothing written ------------------------------------------


def _checkpoint(tmp_path, scale=4):
    path = tmp_path / "m.pth"
    torch.save({"params": build_model("safmnpp-light", scale, dim=8, n_blocks=1).state_dict()}, path)
    return path


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--scale", "5"], "--scale 5 is not supported"),
        (["--input", "320"], "is not WIDTHxHEIGHT"),
        (["--input", "0x10"], "has a zero side"),
        (["--input", "7x7"], "smaller than this model's minimum of 8x8"),
        (["--arch", "safmn-ntire23", "--static", "--input", "15x40"], "minimum of 16x16"),
        (["--opset", str(MIN_OPSET - 1)], f"use {MIN_OPSET} to {MAX_OPSET}"),
        (["--opset", str(MAX_OPSET + 1)], f"use {MIN_OPSET} to {MAX_OPSET}"),
        (["--arch", "resnet"], "Invalid value for '--arch'"),
        (["--param-key", "params_ema"], "--param-key needs --weights"),
        (["--weights", "nope.pth"], "does not exist"),
        (["--json", "/dev/full"], "not a regular file"),
    ],
)
def test_bad_options(tmp_path, args, expect):
    line = assert_one_line_error(run_srx("export", *args, cwd=tmp_path), 2)
    assert expect in line
    assert leftovers(tmp_path) == []


def test_bad_checkpoints(tmp_path):
    foreign = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7)}, foreign)
    good = _checkpoint(tmp_path)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(good.read_bytes()[:-300])
    cases = [
        (["--weights", str(foreign)], "not a SAFMN-family checkpoint"),
        (["--weights", str(corrupt)], "truncated or corrupt"),
        (["--weights", str(good), "--scale", "2"], "--scale 2 contradicts"),
        (["--weights", str(good), "--arch", "safmn"], "does not match --arch safmn"),
    ]
    for args, expect in cases:
        assert expect in assert_one_line_error(run_srx("export", *args, cwd=tmp_path), 2)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["under_file", "missing_dir", "directory", "dev_full"])
def test_unwritable_outputs(tmp_path, where):
    (tmp_path / "file.txt").write_text("x")
    out = {
        "under_file": str(tmp_path / "file.txt" / "m.onnx"),
        "missing_dir": str(tmp_path / "no" / "m.onnx"),
        "directory": str(tmp_path),
        "dev_full": "/dev/full",
    }[where]
    line = assert_one_line_error(run_srx("export", "--arch", "safmnpp-light", "-o", out), 2)
    assert "cannot write" in line or "is a directory" in line or "not a regular file" in line
    assert leftovers(tmp_path) == []


def test_missing_onnxruntime_is_one_line_before_any_work(tmp_path):
    hide = (
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'onnxruntime':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "sys.argv = ['srx', 'export', '--arch', 'safmnpp-light']\n"
        "from srx.cli import main; main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert "pip install 'srx[cpu]'" in assert_one_line_error(proc, 2)
    assert leftovers(tmp_path) == []


# -- srx info on ONNX files srx did not write ----------------------------------------------


def test_info_refuses_damaged_onnx_and_describes_a_foreign_one(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not an onnx model at all" * 10)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    foreign = tmp_path / "relu.onnx"
    onnx.save(
        helper.make_model(
            helper.make_graph(
                [helper.make_node("Relu", ["x"], ["y"])],
                "g",
                [x],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
            )
        ),
        str(foreign),
    )
    from srx.export.model import onnx_from_model

    real = onnx_from_model(build_model("safmnpp-light", 2, dim=8, n_blocks=1)).SerializeToString()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(real[: len(real) // 2])
    cases = [
        (garbage, "not a readable ONNX file"),
        (empty, "not an ONNX model"),
        (truncated, "not a readable ONNX file"),
    ]
    for path, expect in cases:
        assert expect in assert_one_line_error(run_srx("info", str(path)), 2)
    # A readable ONNX that srx did not write: shown as far as srx can (issue 16), and said so.
    proc = run_srx("info", str(foreign))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "x float [1]" in proc.stdout and "Relu 1" in proc.stdout
    assert "cannot run it (no srx.spec metadata; not one 'lr' input and one 'sr' output)" in proc.stdout
