"""CLI conventions shared by every command (docs/cli.md): exit codes, one-line errors, JSON."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REAL_CHECKPOINTS, assert_one_line_error, run_srx, weight_path

from srx.errors import BadInput
from srx.models import build_model
from srx.sizes import parse_size


def test_unknown_option_is_one_line_exit_2():
    assert_one_line_error(run_srx("info", "--no-such-flag"), 2)


def test_unknown_command_is_one_line_exit_2():
    assert_one_line_error(run_srx("frobnicate"), 2)


def test_missing_file(tmp_path):
    line = assert_one_line_error(run_srx("info", str(tmp_path / "nope.pth")), 2)
    assert "does not exist" in line


def test_foreign_checkpoint(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(10, 8)}, path)
    assert "not a SAFMN-family checkpoint" in assert_one_line_error(run_srx("info", str(path)), 2)


def test_info_json_to_stdout(tmp_path):
    path = tmp_path / "m.pth"
    torch.save({"params": build_model("safmn", 3).state_dict()}, path)
    proc = run_srx("info", str(path), "--json", "-")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["spec"]["arch"] == "safmn" and d["spec"]["scale"] == 3 and d["spec"]["params"] > 0
    assert "SAFMN (ICCV 2023) x3" in proc.stderr


@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(REAL_CHECKPOINTS))
def test_info_on_real_checkpoints(name):
    proc = run_srx("info", str(weight_path(name)))
    assert proc.returncode == 0, proc.stderr
    assert REAL_CHECKPOINTS[name][0] in proc.stdout


@pytest.mark.parametrize("text", ["320x180", "320X180", " 320 x 180 "])
def test_parse_size_accepts(text):
    assert parse_size(text) == (320, 180)


@pytest.mark.parametrize("text", ["", "320", "0x10", "-5x10", "10x", "axb", "320x180x3", "99999x10"])
def test_parse_size_refuses(text):
    with pytest.raises(BadInput):
        parse_size(text)
