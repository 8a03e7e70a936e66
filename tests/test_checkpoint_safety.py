"""Checkpoints are untrusted: a pickle that would run code must be refused, not run."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from conftest import assert_one_line_error, run_srx

from srx.errors import BadInput
from srx.models import build_model, load_model


class _RunsCommand:
    """Unpickling this calls os.system, which would create the canary file."""

    def __init__(self, canary: str) -> None:
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def _malicious_checkpoint(tmp_path, *, zip_format: bool):
    canary = tmp_path / "CANARY"
    sd = build_model("safmn", 4).state_dict()
    payload = {"params": sd, "hook": _RunsCommand(str(canary))}
    path = tmp_path / ("evil.pth" if zip_format else "evil_legacy.pth")
    if zip_format:
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    return path, canary


@pytest.mark.parametrize("zip_format", [True, False], ids=["torch-zip", "raw-pickle"])
def test_malicious_pickle_is_refused_without_running(tmp_path, zip_format):
    path, canary = _malicious_checkpoint(tmp_path, zip_format=zip_format)
    with pytest.raises(BadInput, match="refused to load"):
        load_model(path)
    assert not canary.exists(), "the pickle ran code"
    proc = run_srx("info", str(path))
    line = assert_one_line_error(proc, 2)
    assert "refused" in line
    assert not canary.exists(), "the pickle ran code via the CLI"


def test_pickled_module_is_refused(tmp_path):
    path = tmp_path / "whole_model.pth"
    torch.save(build_model("safmn", 2), path)
    with pytest.raises(BadInput, match=r"re-save it with torch.save\(model.state_dict\(\)"):
        load_model(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\x00" * 10, "not a PyTorch checkpoint srx can read"),
        (os.urandom(4096), "not a PyTorch checkpoint srx can read"),
        (b"hello world, plain text", "not a PyTorch checkpoint srx can read"),
    ],
    ids=["empty", "zeros", "random", "text"],
)
def test_corrupt_files_give_one_line(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(BadInput, match=message):
        load_model(path)


def test_truncated_checkpoint(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"params": build_model("safmn", 4).state_dict()}, good)
    data = good.read_bytes()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    proc = run_srx("info", str(bad))
    assert "truncated or corrupt" in assert_one_line_error(proc, 2)


def test_truncated_safetensors(tmp_path):
    from safetensors.torch import save_file

    good = tmp_path / "good.safetensors"
    save_file(build_model("safmnpp", 4).state_dict(), good)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(BadInput, match=r"not a readable \.safetensors"):
        load_model(bad)
