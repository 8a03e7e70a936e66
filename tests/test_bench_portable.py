"""Committed benchmark records name no path of the machine that made them (bench/portable.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from portable import portable

# A home, checkout, scratch or mount folder at the start of an absolute path.
MACHINE_PATH = re.compile(r"(?<![\w.$])/(?:work|home|root|tmp|Users|mnt|scratch)/")


def test_portable_rewrites_the_machine_paths(monkeypatch, tmp_path):
    shared = tmp_path / "shared"
    monkeypatch.setenv("SRX_SHARED", str(shared))
    record = {
        "command": f"{sys.executable} bench/x.py --weights {shared}/weights/a.pth",
        "out": [f"{REPO}/bench/results/r.json", f"{tempfile.gettempdir()}/srx-x/big.png"],
        "n": 3,
    }
    assert portable(record) == {
        "command": "python bench/x.py --weights ../shared/weights/a.pth",
        "out": ["./bench/results/r.json", "$TMPDIR/srx-x/big.png"],
        "n": 3,
    }
    assert str(shared) in record["command"] and str(shared) not in str(portable(record))
    assert not MACHINE_PATH.search(str(portable(record)))


def test_committed_results_name_no_machine_path():
    try:
        listed = subprocess.run(
            ["git", "ls-files", "bench/results"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the committed files cannot be listed")
    found = []
    for name in listed:
        for i, line in enumerate((REPO / name).read_text(errors="replace").splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f"{name}:{i}: {line.strip()[:120]}")
    assert not found, "absolute paths in committed results (write them through bench/portable.py):\n" + "\n".join(
        found[:10]
    )
